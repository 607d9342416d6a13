# lme4 profile confidence intervals for glmmkit's tests (run from this folder:
#   Rscript make_profile.R > ../profile_cases.json).  Data: glmmkit's bundled CSVs.
suppressMessages({library(lme4); library(jsonlite)})
source("glmmkit_data.R")  # load_ds(): the bundled data with glmmkit's level orders
cases <- list(
  list(id = "sleep_REML", ds = "sleepstudy", f = "Reaction ~ Days + (Days | Subject)", family = "gaussian", reml = TRUE),
  list(id = "penicillin_ML", ds = "Penicillin", f = "diameter ~ 1 + (1 | plate) + (1 | sample)", family = "gaussian", reml = FALSE),
  list(id = "cbpp", ds = "cbpp", f = "cbind(incidence, size - incidence) ~ period + (1 | herd)", family = "binomial"),
  list(id = "counts_poisson", ds = "counts_ri", f = "y ~ x1 + x2 + (1 | g)", family = "poisson")
)
out <- lapply(cases, function(cs) {
  d <- load_ds(cs$ds)
  fit <- if (cs$family == "gaussian") lmer(as.formula(cs$f), d, REML = cs$reml) else
    glmer(as.formula(cs$f), d, family = cs$family)
  ci <- suppressWarnings(confint(fit, method = "profile", oldNames = FALSE))
  list(id = cs$id, dataset = cs$ds, formula = cs$f, family = cs$family, reml = if (is.null(cs$reml)) NULL else cs$reml,
       names = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
})
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE))
