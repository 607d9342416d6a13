# performance::icc reference values for glmmkit's tests (run from this folder:
#   Rscript make_icc.R > ../icc_cases.json).  Data: glmmkit's bundled CSVs.
suppressMessages({library(lme4); library(glmmTMB); library(performance); library(jsonlite)})
source("glmmkit_data.R")  # load_ds(): the bundled data with glmmkit's level orders
cases <- list(
  list(id = "sleep_slope", ds = "sleepstudy", fit = quote(lmer(Reaction ~ Days + (Days | Subject), d)),
       f = "Reaction ~ Days + (Days | Subject)", family = "gaussian"),
  list(id = "penicillin", ds = "Penicillin", fit = quote(lmer(diameter ~ 1 + (1 | plate) + (1 | sample), d)),
       f = "diameter ~ 1 + (1 | plate) + (1 | sample)", family = "gaussian"),
  list(id = "cbpp_logit", ds = "cbpp", fit = quote(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, family = binomial)),
       f = "cbind(incidence, size - incidence) ~ period + (1 | herd)", family = "binomial"),
  list(id = "spinal_probit", ds = "spinal", fit = quote(glmer(y ~ x + (1 | patient), d, family = binomial("probit"))),
       f = "y ~ x + (1 | patient)", family = "binomial", link = "probit"),
  list(id = "counts_poisson", ds = "counts_ri", fit = quote(glmer(y ~ x1 + x2 + (1 | g), d, family = poisson)),
       f = "y ~ x1 + x2 + (1 | g)", family = "poisson"),
  list(id = "counts_nb2", ds = "counts_ri", fit = quote(glmmTMB(y ~ x1 + x2 + (1 | g), d, family = nbinom2)),
       f = "y ~ x1 + x2 + (1 | g)", family = "negative_binomial")
)
out <- lapply(cases, function(cs) {
  assign("d", load_ds(cs$ds), envir = .GlobalEnv)  # insight refits a null model from the calling data
  fit <- eval(cs$fit, envir = .GlobalEnv)
  ic <- suppressWarnings(icc(fit))
  by <- suppressWarnings(icc(fit, by_group = TRUE))
  list(id = cs$id, dataset = cs$ds, formula = cs$f, family = cs$family, link = if (is.null(cs$link)) "" else cs$link,
       adjusted = ic$ICC_adjusted, conditional = ic$ICC_conditional,
       by_group = as.list(setNames(as.numeric(by$ICC), as.character(by$Group))))
})
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE))
