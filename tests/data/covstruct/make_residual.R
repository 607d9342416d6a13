# Reference fits for residual (R-side) correlation structures (issue 13), written by nlme.
# Run from this folder: Rscript make_residual.R   (writes residual_cases.json and the data CSVs)
library(nlme)
library(jsonlite)

data(Orthodont); data(BodyWeight); data(Ovary)
O <- as.data.frame(Orthodont); O$Subject <- as.character(O$Subject); O$Sex <- as.character(O$Sex)
O$visit <- (O$age - 6) / 2
write.csv(O, "orthodont.csv", row.names = FALSE)
B <- as.data.frame(BodyWeight); B$Rat <- as.character(B$Rat); B$Diet <- as.character(B$Diet)
write.csv(B, "bodyweight.csv", row.names = FALSE)
V <- as.data.frame(Ovary); V$Mare <- as.character(V$Mare)
V$s1 <- sin(2 * pi * V$Time); V$c1 <- cos(2 * pi * V$Time)
write.csv(V, "ovary.csv", row.names = FALSE)
O$Subject <- factor(O$Subject); B$Rat <- factor(B$Rat); V$Mare <- factor(V$Mare)

pack <- function(name, m, data, ours, residual, reml) {
  cs <- m$modelStruct$corStruct
  rho <- if (is.null(cs)) NULL else as.list(coef(cs, unconstrained = FALSE))
  re <- NULL
  if (inherits(m, "lme")) {
    vc <- VarCorr(m)
    sds <- suppressWarnings(as.numeric(vc[, "StdDev"]))
    re <- sds[-length(sds)]
  }
  list(name = name, data = data, formula = ours, residual = residual, REML = reml,
       loglik = as.numeric(logLik(m)), fixef = as.list(if (inherits(m, "lme")) fixef(m) else coef(m)),
       se = as.list(sqrt(diag(vcov(m)))), sigma = m$sigma, rho = rho, re_sd = re,
       nlme = paste(deparse(m$call), collapse = " "))
}

cases <- list()
for (reml in c(TRUE, FALSE)) {
  meth <- if (reml) "REML" else "ML"; sfx <- if (reml) "_reml" else "_ml"
  m <- lme(distance ~ age + Sex, random = ~ 1 | Subject, data = O, method = meth,
           correlation = corAR1(form = ~ visit | Subject))
  cases[[length(cases) + 1]] <- pack(paste0("orthodont_ar1", sfx), m, "orthodont.csv",
                                     "distance ~ age + Sex + (1 | Subject)", "ar1(visit | Subject)", reml)
  m <- lme(distance ~ age + Sex, random = ~ 1 | Subject, data = O, method = meth,
           correlation = corCAR1(form = ~ age | Subject))
  cases[[length(cases) + 1]] <- pack(paste0("orthodont_car1", sfx), m, "orthodont.csv",
                                     "distance ~ age + Sex + (1 | Subject)", "exp(age | Subject)", reml)
  m <- gls(distance ~ age * Sex, data = O, method = meth, correlation = corCompSymm(form = ~ 1 | Subject))
  cases[[length(cases) + 1]] <- pack(paste0("orthodont_gls_cs", sfx), m, "orthodont.csv",
                                     "distance ~ age * Sex", "cs(1 | Subject)", reml)
  m <- gls(distance ~ age * Sex, data = O, method = meth, correlation = corSymm(form = ~ visit | Subject))
  cases[[length(cases) + 1]] <- pack(paste0("orthodont_gls_un", sfx), m, "orthodont.csv",
                                     "distance ~ age * Sex", "un(visit | Subject)", reml)
  m <- lme(weight ~ Time * Diet, random = ~ Time | Rat, data = B, method = meth,
           correlation = corCAR1(form = ~ Time | Rat))
  cases[[length(cases) + 1]] <- pack(paste0("bodyweight_car1", sfx), m, "bodyweight.csv",
                                     "weight ~ Time * Diet + (Time | Rat)", "exp(Time | Rat)", reml)
  m <- lme(follicles ~ s1 + c1, random = ~ 1 | Mare, data = V, method = meth, correlation = corAR1())
  cases[[length(cases) + 1]] <- pack(paste0("ovary_ar1", sfx), m, "ovary.csv",
                                     "follicles ~ s1 + c1 + (1 | Mare)", "ar1(1 | Mare)", reml)
}
info <- list(nlme = as.character(packageVersion("nlme")), R = R.version.string,
             note = "nlme lme/gls fits; rho is coef(corStruct, unconstrained = FALSE)")
writeLines(toJSON(list(info = info, cases = cases), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           "residual_cases.json")
