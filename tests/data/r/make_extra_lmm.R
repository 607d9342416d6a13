# Extra lme4 reference fits for glmmkit's tests (run: Rscript make_extra_lmm.R > ../extra_lmm_cases.json).
# Data come from the CSVs bundled with glmmkit, with the level orders glmmkit's datasets.json records.
suppressMessages({library(lme4); library(jsonlite)})
source("glmmkit_data.R")  # load_ds(): the bundled data with glmmkit's level orders
cases <- list(
  list(id = "sleep_weights_REML", ds = "sleepstudy", f = "Reaction ~ Days + (Days | Subject)", reml = TRUE, w = "1 + Days/10"),
  list(id = "sleep_weights_ML", ds = "sleepstudy", f = "Reaction ~ Days + (1 | Subject)", reml = FALSE, w = "1 + Days/10"),
  list(id = "sleep_split_uncorr_ML", ds = "sleepstudy", f = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", reml = FALSE),
  list(id = "sleep_uncorr_ML", ds = "sleepstudy", f = "Reaction ~ Days + (Days || Subject)", reml = FALSE),
  list(id = "sleep_offset_REML", ds = "sleepstudy", f = "Reaction ~ Days + offset(2 * Days) + (1 | Subject)", reml = TRUE),
  list(id = "sleep_log_scale_REML", ds = "sleepstudy", f = "log(Reaction) ~ scale(Days) + (Days | Subject)", reml = TRUE),
  list(id = "sleep_poly_I_ML", ds = "sleepstudy", f = "Reaction ~ Days + I(Days^2) + (1 | Subject)", reml = FALSE),
  list(id = "dyestuff_ML", ds = "Dyestuff", f = "Yield ~ 1 + (1 | Batch)", reml = FALSE),
  list(id = "penicillin_ML", ds = "Penicillin", f = "diameter ~ 1 + (1 | plate) + (1 | sample)", reml = FALSE),
  list(id = "pastes_interaction_REML", ds = "Pastes", f = "strength ~ 1 + (1 | batch) + (1 | batch:cask)", reml = TRUE),
  list(id = "pastes_sample_ML", ds = "Pastes", f = "strength ~ 1 + (1 | batch) + (1 | sample)", reml = FALSE),
  list(id = "swine_slope_room_REML", ds = "swine", f = "weight ~ trt * week + (week | room) + (1 | room:pen)", reml = TRUE),
  list(id = "swine_nested_slope_ML", ds = "swine", f = "weight ~ trt + week + (1 + week | room/pen)", reml = FALSE),
  list(id = "swine_pig_slope_REML", ds = "swine", f = "weight ~ trt * week + (1 | room) + (week | room:pen:pig)", reml = TRUE),
  list(id = "cbpp_prop_REML", ds = "cbpp", f = "I(incidence / size) ~ period + (1 | herd)", reml = TRUE),
  list(id = "counts_lmm_factor_slope_ML", ds = "counts_ri", f = "log1p(y) ~ x1 + x2 + (x2 | g)", reml = FALSE),
  list(id = "gamma_lmm_two_slopes_REML", ds = "gamma_ri", f = "log(y) ~ x1 + x2 + (x1 + x2 | g)", reml = TRUE),
  list(id = "beta_lmm_noint_REML", ds = "beta_ri", f = "y ~ 0 + x1 + (1 | g)", reml = TRUE),
  list(id = "instEval_service_REML", ds = "InstEval", f = "y ~ service + (1 | s) + (1 | d)", reml = TRUE),
  list(id = "instEval_ordered_ML", ds = "InstEval", f = "y ~ studage + lectage + (1 | s) + (1 | d)", reml = FALSE),
  list(id = "instEval_ordered_REML", ds = "InstEval", f = "y ~ studage * service + (1 | s) + (1 | d)", reml = TRUE)
)
out <- lapply(cases, function(cs) {
  d <- load_ds(cs$ds)
  if (!is.null(cs$w)) d$.w <- with(d, eval(parse(text = cs$w)))
  fit <- if (is.null(cs$w)) lmer(as.formula(cs$f), data = d, REML = cs$reml) else
    lmer(as.formula(cs$f), data = d, REML = cs$reml, weights = .w)
  vc <- as.data.frame(VarCorr(fit))
  list(id = cs$id, dataset = cs$ds, formula = cs$f, reml = cs$reml, weights = if (is.null(cs$w)) NULL else cs$w,
       logLik = as.numeric(logLik(fit)), sigma = sigma(fit), theta = unname(getME(fit, "theta")),
       fixed = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       varcorr = lapply(seq_len(nrow(vc)), function(i) list(group = vc$grp[i], var1 = ifelse(is.na(vc$var1[i]), "", vc$var1[i]),
                    var2 = ifelse(is.na(vc$var2[i]), "", vc$var2[i]), vcov = vc$vcov[i], sdcor = vc$sdcor[i])),
       singular = isSingular(fit), nobs = nobs(fit),
       fitted_first5 = unname(fitted(fit)[1:5]),
       predict_pop_first5 = unname(predict(fit, re.form = NA)[1:5]))
})
cat(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE))
