# glmmTMB reference fits for glmmkit's families with their own parameters (run from this folder:
#   Rscript make_extra_families.R > ../extra_family_cases.json).
# Beyond the shared reference cases: offsets, interactions, random slopes, crossed grouping,
# NB1, a Gaussian log link and the Student-t, on the bundled data and ../glmm_crossed.csv.
suppressMessages({library(glmmTMB); library(jsonlite)})
source("glmmkit_data.R")  # load_ds(): the bundled data with glmmkit's level orders
crossed <- function() {
  d <- read.csv("../glmm_crossed.csv", stringsAsFactors = FALSE)
  d$subj <- factor(d$subj); d$item <- factor(d$item); d$cond <- factor(d$cond); d
}
cases <- list(
  list(id = "nb2_offset_crossed", data = "crossed", f = "cnt ~ x + cond + offset(log(expo)) + (1 | subj) + (1 | item)",
       fam = "negative_binomial", tmb = quote(nbinom2())),
  list(id = "nb1_crossed", data = "crossed", f = "cnt ~ x + (1 | subj) + (1 | item)", fam = "nbinom1", tmb = quote(nbinom1())),
  list(id = "nb2_interaction_slope", data = "counts_ri", f = "y ~ x1 * x2 + (1 + x1 | g)", fam = "negative_binomial",
       tmb = quote(nbinom2())),
  list(id = "gamma_interaction", data = "gamma_ri", f = "y ~ x1 * x2 + (1 | g)", fam = "gamma", link = "log",
       tmb = quote(Gamma(link = "log"))),
  list(id = "gamma_slope", data = "gamma_ri", f = "y ~ x1 + x2 + (1 + x1 | g)", fam = "gamma", link = "log",
       tmb = quote(Gamma(link = "log"))),
  list(id = "beta_slope", data = "beta_ri", f = "y ~ x1 + (1 + x1 | g)", fam = "beta", tmb = quote(beta_family())),
  list(id = "gaussian_log", data = "gamma_ri", f = "y ~ x1 + x2 + (1 | g)", fam = "gaussian", link = "log",
       tmb = quote(gaussian(link = "log"))),
  list(id = "student_t_sleep", data = "sleepstudy", f = "Reaction ~ Days + (Days | Subject)", fam = "student_t",
       tmb = quote(t_family()))
)
params_of <- function(fit, fam) {
  s <- sigma(fit)
  switch(fam, negative_binomial = list(theta = s), nbinom1 = list(phi = s), gamma = list(shape = 1 / s^2),
         beta = list(phi = s), gaussian = list(sigma = s),
         student_t = list(df = unname(family_params(fit)), sigma = s))
}
out <- lapply(cases, function(cs) {
  d <- switch(cs$data, crossed = crossed(), load_ds(cs$data))
  fit <- glmmTMB(as.formula(cs$f), data = d, family = eval(cs$tmb))
  vc <- VarCorr(fit)$cond
  sds <- unlist(lapply(names(vc), function(g) { v <- attr(vc[[g]], "stddev"); setNames(as.list(v), paste(g, names(v), sep = "|")) }))
  se_fixed <- sqrt(diag(vcov(fit)$cond))
  sdr <- summary(fit$sdr, "fixed")
  list(id = cs$id, data = cs$data, formula = cs$f, family = cs$fam, link = if (is.null(cs$link)) NULL else cs$link,
       logLik = as.numeric(logLik(fit)), fixed = as.list(fixef(fit)$cond), se = as.list(se_fixed),
       sd = as.list(sds), family_params = params_of(fit, cs$fam),
       log_param_se = {  # glmmTMB's log-scale SEs, by our names: betadisp is the log of its dispersion, psi log(df)
         sel <- sdr[rownames(sdr) %in% c("betadisp", "betad"), "Std. Error"]
         nm <- names(params_of(fit, cs$fam))[if (cs$fam == "student_t") 2 else 1]
         res <- setNames(list(unname(sel[1])), nm)
         if (cs$fam == "student_t") res$df <- unname(sdr[rownames(sdr) == "psi", "Std. Error"])
         res},
       warnings = if (is.null(fit$fit$message)) NULL else fit$fit$message,
       nobs = nobs(fit), converged = fit$sdr$pdHess)
})
cat(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE))
