# Reference figures for docs/tutorials/meta_analysis.md and tests/test_tutorials_gee_meta.py.
# Run from this folder:  Rscript make_meta.R   (needs metafor, metadat, lme4, glmmTMB and jsonlite)
# Writes dat_bcg.csv (metafor's dat.bcg, the 13 BCG vaccine trials) and meta_cases.json.
suppressPackageStartupMessages({library(metafor); library(metadat); library(lme4); library(jsonlite)})

dat <- metadat::dat.bcg   # metafor >= 3 keeps its data sets in metadat
write.csv(dat[, c("trial", "author", "year", "tpos", "tneg", "cpos", "cneg", "ablat", "alloc")],
          "dat_bcg.csv", row.names = FALSE)

# the binomial constants lme4 leaves out of logLik at nAGQ > 1: sum over arms of log choose(n, x)
lchoose_sum <- sum(lchoose(dat$tpos + dat$tneg, dat$tpos) + lchoose(dat$cpos + dat$cneg, dat$cpos))

one <- function(res, extra = list()) {
  pr <- predict(res)
  c(list(
    metafor_version = as.character(packageVersion("metafor")),
    lme4_version = as.character(packageVersion("lme4")),
    model = res$model, nAGQ = if (res$model == "UM.FS") 7L else 1L, coding = "+1/2 treated, -1/2 control",
    estimate = unname(c(res$beta)), se = unname(res$se), tau2 = res$tau2,
    sigma2 = if (res$model == "UM.RS") res$sigma2 else NA,
    ci_lb = res$ci.lb, ci_ub = res$ci.ub, pi_lb = pr$pi.lb, pi_ub = pr$pi.ub,
    or = exp(c(res$beta)), or_ci = exp(c(res$ci.lb, res$ci.ub)), or_pi = exp(c(pr$pi.lb, pr$pi.ub)),
    logLik_metafor = c(logLik(res)),
    lchoose_sum = lchoose_sum,
    k = res$k), extra)
}

fs <- rma.glmm(measure = "OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat, model = "UM.FS")
rs <- rma.glmm(measure = "OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat, model = "UM.RS")
print(fs); print(rs)

# the same UM.FS model written out as glmer, long format (one row per arm): checks the coding
long <- data.frame(study = factor(rep(dat$trial, each = 2)),
                   treat = rep(c(1, 0), times = nrow(dat)),
                   g = rep(c(1/2, -1/2), times = nrow(dat)),
                   events = c(rbind(dat$tpos, dat$cpos)),
                   nonevents = c(rbind(dat$tneg, dat$cneg)))
gfs <- glmer(cbind(events, nonevents) ~ 0 + study + treat + (0 + g | study), data = long,
             family = binomial, nAGQ = 7)
gfs1 <- glmer(cbind(events, nonevents) ~ 0 + study + treat + (0 + g | study), data = long,
              family = binomial, nAGQ = 1)
stopifnot(abs(fixef(gfs)[["treat"]] - c(fs$beta)) < 1e-6)
grs <- glmer(cbind(events, nonevents) ~ 1 + treat + (g || study), data = long, family = binomial, nAGQ = 1)
stopifnot(abs(fixef(grs)[["treat"]] - c(rs$beta)) < 1e-6)
# glmmTMB: the same Laplace likelihood with an automatic-differentiation Hessian; lme4's
# finite-difference Hessian (which metafor's SE comes from) gives an SE 0.4% smaller here
tmb <- glmmTMB::glmmTMB(cbind(events, nonevents) ~ 1 + treat + (1 | study) + (0 + g | study),
                        data = long, family = binomial)

out <- list(
  UM.FS = one(fs, list(logLik_lme4 = c(logLik(gfs)),
                       glmer_laplace = list(estimate = fixef(gfs1)[["treat"]],
                                            se = sqrt(vcov(gfs1)["treat", "treat"]),
                                            tau2 = VarCorr(gfs1)$study[1],
                                            logLik = c(logLik(gfs1))))),
  UM.RS = one(rs, list(logLik_lme4 = c(logLik(grs)),
                       glmmTMB = list(estimate = glmmTMB::fixef(tmb)$cond[["treat"]],
                                      se = sqrt(vcov(tmb)$cond["treat", "treat"]),
                                      logLik = c(logLik(tmb)),
                                      version = as.character(packageVersion("glmmTMB"))))),
  note = paste("metafor::rma.glmm(measure='OR', ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg, model=...);",
               "UM.FS: glmer(cbind(x, n - x) ~ -1 + treat + study + (0 + g | study), nAGQ = 7), g = +1/2 treated, -1/2 control;",
               "UM.RS: glmer(... ~ -1 + treat + 1 + (g || study), nAGQ = 1 (metafor forces Laplace));",
               "logLik_metafor for UM.FS is ll(saturated glm) - deviance(glmer)/2, i.e. with the binomial constants;",
               "logLik_lme4 at nAGQ > 1 leaves out lchoose_sum.")
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "meta_cases.json")
