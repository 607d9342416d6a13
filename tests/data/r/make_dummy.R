# lme4 reference fits for dummy() in random terms (run: Rscript make_dummy.R > ../dummy_cases.json).
# InstEval's first 400 students (MixedModels.jl's test suite fits all 73k rows with the same term).
suppressMessages({library(lme4); library(jsonlite)})
source("glmmkit_data.R")  # load_ds(): the bundled data with glmmkit's level orders
d <- load_ds("InstEval")
d <- d[as.integer(as.character(d$s)) <= 400, ]
cases <- list(
  list(id = "insteval400_dummy_REML", f = 'y ~ 1 + (1 | s) + (0 + dummy(service, "1") | d)', reml = TRUE),
  list(id = "insteval400_dummy_ML", f = 'y ~ service + (1 | s) + (1 | d) + (0 + dummy(service, "1") | d)', reml = FALSE)
)
out <- lapply(cases, function(cs) {
  fit <- lmer(as.formula(cs$f), data = d, REML = cs$reml)
  vc <- as.data.frame(VarCorr(fit))
  list(id = cs$id, formula = cs$f, reml = cs$reml, max_student = 400, nobs = nobs(fit),
       logLik = as.numeric(logLik(fit)), sigma = sigma(fit), theta = unname(getME(fit, "theta")),
       fixed = as.list(fixef(fit)),
       varcorr = lapply(seq_len(nrow(vc)), function(i) list(group = vc$grp[i], var1 = vc$var1[i], sdcor = vc$sdcor[i])))
})
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE))
