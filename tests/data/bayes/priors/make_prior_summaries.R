# rstanarm's default priors (prior_summary) for the models tests/test_bayes_model.py builds.
# Run from this folder: Rscript make_prior_summaries.R  (writes prior_summaries.json).
# A few iterations of one chain suffice: prior_summary depends on the data and the prior
# arguments only, never on the draws.
suppressMessages({library(rstanarm); library(jsonlite)})
source("../../r/glmmkit_data.R", chdir = TRUE)
dd <- "../../../../src/glmmkit/datasets/data"  # load_ds reads from here, relative to this folder
fit_quiet <- function(expr) suppressWarnings(expr)
models <- list(
  cbpp = function() stan_glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = load_ds("cbpp"),
                               family = binomial, chains = 1, iter = 20, refresh = 0, seed = 1),
  sleepstudy = function() stan_lmer(Reaction ~ Days + (Days | Subject), data = load_ds("sleepstudy"),
                                    chains = 1, iter = 20, refresh = 0, seed = 1),
  counts_poisson = function() stan_glmer(y ~ x1 + x2 + (1 | g), data = load_ds("counts_ri"), family = poisson,
                                         chains = 1, iter = 20, refresh = 0, seed = 1),
  counts_nb = function() stan_glmer.nb(y ~ x1 + x2 + (1 | g), data = load_ds("counts_ri"),
                                       chains = 1, iter = 20, refresh = 0, seed = 1),
  gamma = function() stan_glmer(y ~ x1 + x2 + (1 | g), data = load_ds("gamma_ri"), family = Gamma(link = "log"),
                                chains = 1, iter = 20, refresh = 0, seed = 1)
)
out <- list()
for (nm in names(models)) {
  fit <- fit_quiet(models[[nm]]())
  ps <- prior_summary(fit)
  one <- function(p) {
    if (is.null(p)) return(NULL)
    keep <- p[intersect(names(p), c("dist", "location", "scale", "adjusted_scale", "df", "rate", "aux_name",
                                    "regularization", "concentration", "shape"))]
    lapply(keep, function(v) if (is.numeric(v)) as.numeric(v) else v)
  }
  out[[nm]] <- list(prior = one(ps$prior), prior_intercept = one(ps$prior_intercept), prior_aux = one(ps$prior_aux),
                    prior_covariance = one(ps$prior_covariance), printed = capture.output(print(ps)),
                    coef_names = colnames(fit$x)[colnames(fit$x) != "(Intercept)"])
}
out$rstanarm_version <- as.character(packageVersion("rstanarm"))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), "prior_summaries.json")
