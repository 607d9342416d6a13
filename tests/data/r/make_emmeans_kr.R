# Kenward-Roger and emmeans references for glmmkit's tests (run from this folder:
#   Rscript make_emmeans_kr.R > ../emmeans_kr_cases.json).
# Data: glmmkit's bundled CSVs (load_ds) and nlme's Orthodont and BodyWeight, which are written into
# the JSON ("data") so the tests never need R.  KR: lmerTest's summary/anova with
# ddf = "Kenward-Roger" (pbkrtest underneath) and pbkrtest's vcovAdj; emmeans: summaries with
# infer = c(TRUE, TRUE) (intervals and tests), contrasts by pairs().
suppressMessages({library(lmerTest); library(pbkrtest); library(emmeans); library(nlme); library(glmmTMB)
                  library(jsonlite)})
source("glmmkit_data.R")  # load_ds(): the bundled data with glmmkit's level orders
# tight convergence: lmer's default stop leaves BodyWeight's θ 1e-3 from its optimum
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

orth <- as.data.frame(nlme::Orthodont)
orth$Subject <- factor(as.character(orth$Subject), levels = sort(unique(as.character(orth$Subject))))
orth$Sex <- factor(as.character(orth$Sex), levels = c("Male", "Female"))
orth$agef <- factor(orth$age, levels = c(8, 10, 12, 14))
bw <- as.data.frame(nlme::BodyWeight)
bw$Rat <- factor(as.character(bw$Rat), levels = as.character(1:16))
bw$Diet <- factor(as.character(bw$Diet), levels = c("1", "2", "3"))
extra <- list(Orthodont = orth, BodyWeight = bw)
get_data <- function(name) if (!is.null(extra[[name]])) extra[[name]] else load_ds(name)

export <- function(d) {
  cols <- lapply(names(d), function(v) {
    x <- d[[v]]
    if (is.factor(x)) list(name = v, type = "factor", levels = I(levels(x)), values = as.character(x))
    else list(name = v, type = "numeric", values = as.numeric(x))
  })
  cols
}

coef_rows <- function(co) lapply(seq_len(nrow(co)), function(i)
  list(term = rownames(co)[i], estimate = co[i, "Estimate"], std_error = co[i, "Std. Error"], df = co[i, "df"],
       statistic = co[i, "t value"], p_value = co[i, "Pr(>|t|)"]))

kr_cases <- list(
  list(id = "sleep", ds = "sleepstudy", f = "Reaction ~ Days + (Days | Subject)"),
  list(id = "sleep_uncorr", ds = "sleepstudy", f = "Reaction ~ Days + (Days || Subject)"),
  list(id = "orthodont_ri", ds = "Orthodont", f = "distance ~ age + Sex + (1 | Subject)"),
  list(id = "orthodont_rs", ds = "Orthodont", f = "distance ~ age + Sex + (age | Subject)"),
  list(id = "orthodont_int", ds = "Orthodont", f = "distance ~ age * Sex + (age | Subject)"),
  list(id = "bodyweight", ds = "BodyWeight", f = "weight ~ Time * Diet + (Time | Rat)"),
  list(id = "penicillin", ds = "Penicillin", f = "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list(id = "pastes", ds = "Pastes", f = "strength ~ 1 + (1 | batch/cask)"),
  list(id = "swine", ds = "swine", f = "weight ~ trt * week + (week | room) + (1 | room:pen)")
)
kr <- lapply(kr_cases, function(cs) {
  fit <- lmer(as.formula(cs$f), data = get_data(cs$ds), REML = TRUE, control = ctl)
  kr_tab <- coef(summary(fit, ddf = "Kenward-Roger"))
  sat_tab <- coef(summary(fit, ddf = "Satterthwaite"))
  av <- anova(fit, ddf = "Kenward-Roger")
  list(id = cs$id, dataset = cs$ds, formula = cs$f,
       theta = unname(getME(fit, "theta")), sigma = sigma(fit),
       kr = coef_rows(kr_tab), satterthwaite = coef_rows(sat_tab),
       vcov = unname(as.matrix(vcov(fit))), vcov_adj = unname(as.matrix(vcovAdj(fit))),
       anova = lapply(seq_len(nrow(av)), function(i) list(term = rownames(av)[i], num_df = av[i, "NumDF"],
                      den_df = av[i, "DenDF"], F = av[i, "F value"], p_value = av[i, "Pr(>F)"])))
})

emm_rows <- function(s) {
  s <- as.data.frame(s)
  lapply(seq_len(nrow(s)), function(i) as.list(s[i, , drop = FALSE]))
}
full <- function(x) summary(x, infer = c(TRUE, TRUE))

emm_cases <- list()
# model: its fixed effects and lme4's covariance are stored too, so the tests can check the emmeans
# arithmetic on R's own estimates (GLMM standard errors differ between fitting programs at ~1e-2)
add <- function(id, ds, formula, family, model, call, means, contrasts = NULL) {
  emm_cases[[length(emm_cases) + 1]] <<- list(id = id, dataset = ds, formula = formula, family = family,
    beta = if (is.null(model)) NULL else unname(fixef(model)),
    vcov = if (is.null(model)) NULL else unname(as.matrix(vcov(model))), call = call, means = emm_rows(full(means)), contrasts = if (is.null(contrasts)) NULL else emm_rows(contrasts))
}
cbpp <- load_ds("cbpp")
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)
e <- emmeans(g, "period", type = "response")
add("cbpp_response_tukey", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
    g, list(specs = "period", type = "response", pairwise = TRUE, adjust = "tukey"), e, full(pairs(e)))
el <- emmeans(g, "period")
add("cbpp_link_holm", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
    g, list(specs = "period", type = "link", pairwise = TRUE, adjust = "holm"), el, full(pairs(el, adjust = "holm")))
add("cbpp_link_none", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
    g, list(specs = "period", type = "link", pairwise = TRUE, adjust = "none"), el, full(pairs(el, adjust = "none")))
add("cbpp_link_bonferroni", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
    g, list(specs = "period", type = "link", pairwise = TRUE, adjust = "bonferroni"), el,
    full(pairs(el, adjust = "bonferroni")))

cnt <- load_ds("counts_ri")
gp <- glmer(y ~ x1 + x2 + (1 | g), data = cnt, family = poisson)
ep <- emmeans(gp, "x2", type = "response")
add("counts_poisson_response", "counts_ri", "y ~ x1 + x2 + (1 | g)", "poisson",
    gp, list(specs = "x2", type = "response", pairwise = TRUE, adjust = "tukey"), ep, full(pairs(ep)))

# the same GLMMs fitted by glmmTMB, whose Laplace fit glmmkit's equals (lme4's covariance of β differs
# from both by ~1% on cbpp): emmeans on them checks glmmkit's tables on glmmkit's own fit
tmb_fixef <- function(m) fixef(m)$cond
gt <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)
et_ <- emmeans(gt, "period", type = "response", df = Inf)  # glmmTMB: residual df unless told
add("cbpp_response_tukey_glmmTMB", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
    "binomial", NULL, list(specs = "period", type = "response", pairwise = TRUE, adjust = "tukey"), et_,
    full(pairs(et_)))
emm_cases[[length(emm_cases)]]$beta <- unname(tmb_fixef(gt))
emm_cases[[length(emm_cases)]]$vcov <- unname(as.matrix(vcov(gt)$cond))
gpt <- glmmTMB(y ~ x1 + x2 + (1 | g), data = cnt, family = poisson)
ept <- emmeans(gpt, "x2", type = "response", df = Inf)
add("counts_poisson_response_glmmTMB", "counts_ri", "y ~ x1 + x2 + (1 | g)", "poisson", NULL,
    list(specs = "x2", type = "response", pairwise = TRUE, adjust = "tukey"), ept, full(pairs(ept)))
emm_cases[[length(emm_cases)]]$beta <- unname(tmb_fixef(gpt))
emm_cases[[length(emm_cases)]]$vcov <- unname(as.matrix(vcov(gpt)$cond))

o <- lmer(distance ~ age + Sex + (1 | Subject), data = orth, control = ctl)
eo <- emmeans(o, "Sex")  # emmeans' default for lmer: Kenward-Roger
add("orthodont_sex_kr", "Orthodont", "distance ~ age + Sex + (1 | Subject)", "gaussian",
    o, list(specs = "Sex", ddf = "kenward-roger", pairwise = TRUE, adjust = "tukey"), eo, full(pairs(eo)))
eos <- emmeans(o, "Sex", lmer.df = "satterthwaite")
add("orthodont_sex_satterthwaite", "Orthodont", "distance ~ age + Sex + (1 | Subject)", "gaussian",
    o, list(specs = "Sex", ddf = "satterthwaite", pairwise = TRUE, adjust = "tukey"), eos, full(pairs(eos)))
eoa <- emmeans(o, "Sex", at = list(age = 12))
add("orthodont_sex_at", "Orthodont", "distance ~ age + Sex + (1 | Subject)", "gaussian",
    o, list(specs = "Sex", ddf = "kenward-roger", at = list(age = 12)), eoa)

of <- lmer(distance ~ agef * Sex + (1 | Subject), data = orth, control = ctl)
eb <- emmeans(of, "agef", by = "Sex")
add("orthodont_agef_by_sex", "Orthodont", "distance ~ agef * Sex + (1 | Subject)", "gaussian",
    of, list(specs = "agef", by = "Sex", ddf = "kenward-roger", pairwise = TRUE, adjust = "tukey"), eb, full(pairs(eb)))
em2 <- emmeans(of, c("agef", "Sex"), lmer.df = "satterthwaite")
add("orthodont_two_factors", "Orthodont", "distance ~ agef * Sex + (1 | Subject)", "gaussian",
    of, list(specs = c("agef", "Sex"), ddf = "satterthwaite", pairwise = TRUE, adjust = "holm"), em2,
    full(pairs(em2, adjust = "holm")))
eavg <- emmeans(of, "agef")  # averaged over Sex with equal weights
add("orthodont_agef_avg", "Orthodont", "distance ~ agef * Sex + (1 | Subject)", "gaussian",
    of, list(specs = "agef", ddf = "kenward-roger"), eavg)

# an empty cell (no 14-year-old girls): lme4 drops agef14:SexFemale; emmeans marks what is not estimable
orth_gap <- orth[!(orth$agef == "14" & orth$Sex == "Female"), ]
og <- lmer(distance ~ agef * Sex + (1 | Subject), data = orth_gap, control = ctl)
eg <- emmeans(og, "agef", by = "Sex", lmer.df = "satterthwaite")
add("orthodont_empty_cell_by", "Orthodont_gap", "distance ~ agef * Sex + (1 | Subject)", "gaussian",
    og, list(specs = "agef", by = "Sex", ddf = "satterthwaite", pairwise = TRUE, adjust = "holm"), eg,
    full(pairs(eg, adjust = "holm")))
ega <- emmeans(og, "agef", lmer.df = "satterthwaite")
add("orthodont_empty_cell_avg", "Orthodont_gap", "distance ~ agef * Sex + (1 | Subject)", "gaussian",
    og, list(specs = "agef", ddf = "satterthwaite", pairwise = TRUE, adjust = "tukey"), ega, full(pairs(ega)))

b <- lmer(weight ~ Time * Diet + (Time | Rat), data = bw, control = ctl)
et <- emtrends(b, "Diet", var = "Time")
add("bodyweight_emtrends", "BodyWeight", "weight ~ Time * Diet + (Time | Rat)", "gaussian",
    b, list(specs = "Diet", var = "Time", ddf = "kenward-roger", pairwise = TRUE, adjust = "tukey"), et, full(pairs(et)))
ebt <- emmeans(b, "Diet", by = "Time", at = list(Time = c(1, 64)))
add("bodyweight_by_time", "BodyWeight", "weight ~ Time * Diet + (Time | Rat)", "gaussian",
    b, list(specs = "Diet", by = "Time", at = list(Time = c(1, 64)), ddf = "kenward-roger", pairwise = TRUE,
         adjust = "tukey"), ebt, full(pairs(ebt)))
sw <- lmer(weight ~ trt * week + (week | room) + (1 | room:pen), data = load_ds("swine"), control = ctl)
esw <- emmeans(sw, "trt", lmer.df = "satterthwaite")
add("swine_trt_satterthwaite", "swine", "weight ~ trt * week + (week | room) + (1 | room:pen)", "gaussian",
    sw, list(specs = "trt", ddf = "satterthwaite", pairwise = TRUE, adjust = "tukey"), esw, full(pairs(esw)))

out <- list(versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                            lme4 = as.character(packageVersion("lme4")),
                            lmerTest = as.character(packageVersion("lmerTest")),
                            pbkrtest = as.character(packageVersion("pbkrtest")),
                            emmeans = as.character(packageVersion("emmeans")),
                            glmmTMB = as.character(packageVersion("glmmTMB"))),
            data = list(Orthodont = export(orth), Orthodont_gap = export(orth_gap), BodyWeight = export(bw)),
            kenward_roger = kr, emmeans = emm_cases)
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"))
