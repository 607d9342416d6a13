# Reference fits for G-side covariance structures (issue 13), written by glmmTMB.
# Run from this folder: Rscript make_covstruct.R   (writes covstruct_cases.json)
# Data: repeated.csv and spatial.csv from simulate.py; machines.csv is nlme's Machines.
# homcs / homdiag (one variance) are glmmTMB's cs / diag with the variances mapped equal.
library(glmmTMB)
library(jsonlite)

d <- read.csv("repeated.csv"); d$vf <- factor(d$visit); d$tt <- numFactor(d$visit); d$id <- factor(d$id)
M <- read.csv("machines.csv"); M$Machine <- factor(M$Machine); M$Worker <- factor(M$Worker)
s <- read.csv("spatial.csv"); s$pos <- numFactor(s$xc, s$yc); s$group <- factor(s$group)

one <- function(name, formula, data, dataname, family = "gaussian", REML = FALSE, map = NULL, ours) {
  fam <- switch(family, gaussian = gaussian(), poisson = poisson())
  m <- glmmTMB(as.formula(formula), data = data, family = fam, REML = REML, map = map)
  vc <- VarCorr(m)$cond
  re <- lapply(vc, function(S) list(sd = unname(attr(S, "stddev")),
                                    cor = unname(attr(S, "correlation"))))
  list(name = name, data = dataname, formula = ours, r_formula = formula, family = family, REML = REML,
       loglik = as.numeric(logLik(m)), fixef = as.list(fixef(m)$cond),
       se = as.list(sqrt(diag(vcov(m)$cond))),
       sigma = if (family == "gaussian") sigma(m) else NULL, re = re,
       converged = m$fit$convergence == 0 && isTRUE(m$sdr$pdHess))
}

cases <- list(
  one("machines_us", "score ~ Machine + us(0 + Machine | Worker)", M, "machines.csv",
      ours = "score ~ Machine + us(0 + Machine | Worker)"),
  one("machines_cs", "score ~ Machine + cs(0 + Machine | Worker)", M, "machines.csv",
      ours = "score ~ Machine + cs(0 + Machine | Worker)"),
  one("machines_cs_reml", "score ~ Machine + cs(0 + Machine | Worker)", M, "machines.csv", REML = TRUE,
      ours = "score ~ Machine + cs(0 + Machine | Worker)"),
  one("machines_homcs", "score ~ Machine + cs(0 + Machine | Worker)", M, "machines.csv",
      map = list(theta = factor(c(1, 1, 1, 2))), ours = "score ~ Machine + homcs(0 + Machine | Worker)"),
  one("machines_homcs_reml", "score ~ Machine + cs(0 + Machine | Worker)", M, "machines.csv", REML = TRUE,
      map = list(theta = factor(c(1, 1, 1, 2))), ours = "score ~ Machine + homcs(0 + Machine | Worker)"),
  one("machines_diag", "score ~ Machine + diag(0 + Machine | Worker)", M, "machines.csv",
      ours = "score ~ Machine + diag(0 + Machine | Worker)"),
  one("machines_homdiag", "score ~ Machine + diag(0 + Machine | Worker)", M, "machines.csv",
      map = list(theta = factor(c(1, 1, 1))), ours = "score ~ Machine + homdiag(0 + Machine | Worker)"),
  one("repeated_ar1", "y ~ x + grp + ar1(vf + 0 | id)", d, "repeated.csv",
      ours = "y ~ x + grp + ar1(0 + factor(visit) | id)"),
  one("repeated_ar1_reml", "y ~ x + grp + ar1(vf + 0 | id)", d, "repeated.csv", REML = TRUE,
      ours = "y ~ x + grp + ar1(0 + factor(visit) | id)"),
  one("repeated_ou", "y ~ x + grp + ou(tt + 0 | id)", d, "repeated.csv",
      ours = "y ~ x + grp + ou(visit | id)"),
  one("spatial_exp", "y ~ z + exp(pos + 0 | group)", s, "spatial.csv",
      ours = "y ~ z + exp(xc + yc | group)"),
  one("spatial_gau", "y ~ z + gau(pos + 0 | group)", s, "spatial.csv",
      ours = "y ~ z + gau(xc + yc | group)"),
  one("count_ar1", "count ~ x + ar1(vf + 0 | id)", d, "repeated.csv", family = "poisson",
      ours = "count ~ x + ar1(0 + factor(visit) | id)"),
  one("count_cs", "count ~ x + cs(vf + 0 | id)", d, "repeated.csv", family = "poisson",
      ours = "count ~ x + cs(0 + factor(visit) | id)"),
  one("count_toep", "count ~ x + toep(vf + 0 | id)", d, "repeated.csv", family = "poisson",
      ours = "count ~ x + toep(0 + factor(visit) | id)"),
  one("count_homdiag", "count ~ x + diag(vf + 0 | id)", d, "repeated.csv", family = "poisson",
      map = list(theta = factor(rep(1, 6))), ours = "count ~ x + homdiag(0 + factor(visit) | id)")
)
info <- list(glmmTMB = as.character(packageVersion("glmmTMB")), R = R.version.string,
             note = "glmmTMB fits; homcs/homdiag by mapping glmmTMB's cs/diag variances equal")
writeLines(toJSON(list(info = info, cases = cases), auto_unbox = TRUE, digits = NA, pretty = TRUE,
                  null = "null"), "covstruct_cases.json")
