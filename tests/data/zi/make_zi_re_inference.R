# Reference values for inference on models with random effects in the zero-inflation formula
# (tests/test_zero_random_inference.py), written by glmmTMB.
# Run from anywhere:  Rscript tests/data/zi/make_zi_re_inference.R   (writes
# tests/data/zi/zi_re_inference.json beside this script).
#
# * predict(se.fit = TRUE) of some fitted rows for every type, conditional on the random effects of
#   both parts (re.form = NULL), and at the population level (see population() below; glmmTMB's own
#   re.form = NA values, newdata = the whole data, are kept as *_glmmtmb).  Rows are 0-based.
# * profile likelihood intervals of sal_zip_zi_re: confint(method = "uniroot"), every parameter; the
#   random-effect SD rows are on glmmTMB's log-SD scale (theta_1|site.1 for the conditional part,
#   zi~theta_1|site.1 for the zero part's: glmmTMB gives both the same name).
suppressPackageStartupMessages({
  library(glmmTMB)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(script)) dirname(normalizePath(script)) else getwd()
root <- normalizePath(file.path(here, "..", "..", ".."))

meta <- fromJSON(file.path(root, "tests/data/r_datasets/datasets.json"), simplifyVector = FALSE)
read_r_dataset <- function(name) {
  m <- meta[[name]]
  d <- read.csv(file.path(root, "tests/data/r_datasets", m$file), stringsAsFactors = FALSE)
  for (col in m$columns) {
    v <- col$name
    if (col$type %in% c("factor", "ordered"))
      d[[v]] <- factor(as.character(d[[v]]), levels = unlist(col$levels),
                       ordered = col$type == "ordered")
    else if (col$type == "integer") d[[v]] <- as.integer(d[[v]])
  }
  stopifnot(nrow(d) == m$rows)
  d
}
Sal <- read_r_dataset("Salamanders")
zp <- read.csv(file.path(root, "tests/data/zi/sim_zip2.csv"))
zp$g <- factor(zp$g, levels = sort(unique(zp$g)))

interval_list <- function(ci) {
  out <- list()
  for (i in seq_len(nrow(ci))) out[[rownames(ci)[i]]] <- unname(as.numeric(ci[i, 1:2]))
  out
}

## The population level (every random effect at 0) by the delta method in R: glmmTMB 1.1.5's
## re.form = NA sets only the conditional part's b to 0 (predict maps b, not bzi: the zero part's
## effects stay random and are re-solved given b = 0), so its zprob/zlink/response values there are not
## the population's; they are stored as *_glmmtmb.  Here φ(β, β_zi) at the fixed effects alone and
## Var = g' V g with V = vcov(fit, full = TRUE) and g the analytic gradient of φ.
population <- function(fit, data, ty, rows) {
  X <- model.matrix(lme4::nobars(formula(fit)), data)[rows + 1, , drop = FALSE]
  Xz <- model.matrix(lme4::nobars(fit$modelInfo$allForm$ziformula), data)[rows + 1, , drop = FALSE]
  b <- fixef(fit)$cond; bz <- fixef(fit)$zi
  V <- vcov(fit, full = TRUE)
  p <- length(b); pz <- length(bz)
  V <- V[seq_len(p + pz), seq_len(p + pz)]  # cond β then zi β lead vcov(full = TRUE)
  stopifnot(identical(rownames(V), c(names(b), paste0("zi~", names(bz)))))
  eta <- drop(X %*% b); zeta <- drop(Xz %*% bz)
  mu <- exp(eta); pi <- plogis(zeta)
  zero <- matrix(0, length(rows), pz); zeroc <- matrix(0, length(rows), p)
  G <- switch(ty,
    link = cbind(X, zero), conditional = cbind(mu * X, zero),
    zlink = cbind(zeroc, Xz), zprob = cbind(zeroc, pi * (1 - pi) * Xz),
    response = cbind((1 - pi) * mu * X, -mu * pi * (1 - pi) * Xz))
  val <- switch(ty, link = eta, conditional = mu, zlink = zeta, zprob = pi, response = (1 - pi) * mu)
  list(fit = unname(val), se = unname(sqrt(rowSums((G %*% V) * G))))
}

predictions <- function(fit, data, types, rows) {
  out <- list()
  for (ty in types) {
    cond <- predict(fit, se.fit = TRUE, type = ty)
    pop <- predict(fit, newdata = data, se.fit = TRUE, type = ty, re.form = NA)
    ours <- population(fit, data, ty, rows)
    out[[ty]] <- list(fit = unname(cond$fit[rows + 1]), se_fit = unname(cond$se.fit[rows + 1]),
                      fit_population = ours$fit, se_fit_population = ours$se,
                      fit_population_glmmtmb = unname(pop$fit[rows + 1]),
                      se_fit_population_glmmtmb = unname(pop$se.fit[rows + 1]))
  }
  out
}

make_case <- function(id, data, file, formula, ziformula, family, family_obj, types, rows, profile) {
  fit <- glmmTMB(as.formula(formula), ziformula = as.formula(ziformula), family = family_obj, data = data)
  stopifnot(fit$fit$convergence == 0, isTRUE(fit$sdr$pdHess))
  out <- list(id = id, data = file, formula = formula, ziformula = ziformula, family = family,
              logLik = as.numeric(logLik(fit)),
              predict = c(list(rows = I(rows)), predictions(fit, data, types, rows)))
  if (profile) {
    t0 <- proc.time()[["elapsed"]]
    uni <- confint(fit, method = "uniroot", full = TRUE)
    ## glmmTMB names both parts' SD rows theta_1|site.1: the zero part's (after the conditional
    ## part's) are written as zi~theta_1|site.1
    th <- grep("^theta_", rownames(uni))
    n_cond <- sum(names(fit$fit$par) == "theta")
    zi_rows <- th[seq_along(th) > n_cond]
    rownames(uni)[zi_rows] <- paste0("zi~", rownames(uni)[zi_rows])
    cat(sprintf("%-16s uniroot %.1f s\n", id, proc.time()[["elapsed"]] - t0))
    print(uni)
    out$estimates <- as.list(setNames(uni[, 3], rownames(uni)))
    out$uniroot <- interval_list(uni)
  }
  cat(sprintf("%-16s logLik %.6f\n", id, as.numeric(logLik(fit))))
  out
}

types <- c("link", "response", "conditional", "zprob", "zlink")
cases <- list(
  make_case("sal_zip_zi_re", Sal, "tests/data/r_datasets/Salamanders.csv", "count ~ spp + mined + (1 | site)",
            "~mined + (1 | site)", "poisson", poisson(), types, as.integer(c(0, 49, 161, 322, 482, 599, 643)),
            profile = TRUE),
  make_case("sim_zip_re_both", zp, "tests/data/zi/sim_zip2.csv", "count ~ x + (1 | g)", "~z + (1 | g)",
            "poisson", poisson(), types, as.integer(c(0, 500, 1000, 1499, 1999)), profile = FALSE)
)
info <- list(glmmTMB = as.character(packageVersion("glmmTMB")), R = R.version.string)
writeLines(toJSON(list(info = info, cases = cases), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           file.path(here, "zi_re_inference.json"))
cat("wrote", file.path(here, "zi_re_inference.json"), "\n")
