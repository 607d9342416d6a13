# Reference fits for heterogeneous residual variances (dispformula= of lmer; nlme's varIdent), by nlme.
# Run from this folder: Rscript make_variance.R   (writes variance_cases.json; data from make_residual.R)
library(nlme)
library(jsonlite)
O <- read.csv("orthodont.csv"); O$Subject <- factor(O$Subject); O$Sex <- factor(O$Sex)
O$agef <- factor(O$age)
pack <- function(name, m, ours, disp, residual, reml) {
  vf <- m$modelStruct$varStruct
  ratios <- coef(vf, unconstrained = FALSE, allCoef = TRUE)
  cs <- m$modelStruct$corStruct
  list(name = name, data = "orthodont.csv", formula = ours, dispformula = disp, residual = residual, REML = reml,
       loglik = as.numeric(logLik(m)), fixef = as.list(if (inherits(m, "lme")) fixef(m) else coef(m)),
       se = as.list(sqrt(diag(vcov(m)))), sigma = m$sigma, ratios = as.list(ratios),
       rho = if (is.null(cs)) NULL else unname(coef(cs, unconstrained = FALSE)))
}
cases <- list()
for (reml in c(TRUE, FALSE)) {
  meth <- if (reml) "REML" else "ML"; sfx <- if (reml) "_reml" else "_ml"
  m <- lme(distance ~ age + Sex, random = ~ 1 | Subject, data = O, method = meth, weights = varIdent(form = ~ 1 | Sex))
  cases[[length(cases) + 1]] <- pack(paste0("orthodont_varident_sex", sfx), m, "distance ~ age + Sex + (1 | Subject)",
                                     "~ Sex", NULL, reml)
  m <- gls(distance ~ age * Sex, data = O, method = meth, correlation = corSymm(form = ~ visit | Subject),
           weights = varIdent(form = ~ 1 | agef))
  cases[[length(cases) + 1]] <- pack(paste0("orthodont_gls_un_varident", sfx), m, "distance ~ age * Sex",
                                     "~ factor(age)", "un(visit | Subject)", reml)
}
writeLines(toJSON(list(info = list(nlme = as.character(packageVersion("nlme")), R = R.version.string,
                                   note = "ratios: nlme's varIdent sigma multipliers (first level 1)"),
                       cases = cases), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           "variance_cases.json")
