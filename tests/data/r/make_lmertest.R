# lmerTest Satterthwaite tables for glmmkit's tests (run from this folder:
#   Rscript make_lmertest.R > ../lmertest_cases.json).  Data: glmmkit's bundled CSVs.
suppressMessages({library(lmerTest); library(jsonlite)})
source("glmmkit_data.R")  # load_ds(): the bundled data with glmmkit's level orders
cases <- list(
  list(id = "sleep_REML", ds = "sleepstudy", f = "Reaction ~ Days + (Days | Subject)", reml = TRUE),
  list(id = "sleep_ML", ds = "sleepstudy", f = "Reaction ~ Days + (Days | Subject)", reml = FALSE),
  list(id = "sleep_uncorr_REML", ds = "sleepstudy", f = "Reaction ~ Days + (Days || Subject)", reml = TRUE),
  list(id = "penicillin_REML", ds = "Penicillin", f = "diameter ~ 1 + (1 | plate) + (1 | sample)", reml = TRUE),
  list(id = "pastes_REML", ds = "Pastes", f = "strength ~ 1 + (1 | batch/cask)", reml = TRUE),
  list(id = "swine_REML", ds = "swine", f = "weight ~ trt * week + (week | room) + (1 | room:pen)", reml = TRUE),
  list(id = "cbpp_lmm_ML", ds = "cbpp", f = "incidence ~ period + size + (1 | herd)", reml = FALSE)
)
out <- lapply(cases, function(cs) {
  d <- load_ds(cs$ds)
  fit <- lmer(as.formula(cs$f), data = d, REML = cs$reml)
  co <- coef(summary(fit))
  list(id = cs$id, dataset = cs$ds, formula = cs$f, reml = cs$reml,
       df = as.list(setNames(co[, "df"], rownames(co))), p = as.list(setNames(co[, "Pr(>|t|)"], rownames(co))),
       t = as.list(setNames(co[, "t value"], rownames(co))))
})
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE))
