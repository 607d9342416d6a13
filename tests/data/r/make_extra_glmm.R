# Extra lme4 GLMM reference fits for glmmkit's tests (run from this folder:
#   Rscript make_extra_glmm.R > ../extra_glmm_cases.json).
# Beyond the shared reference cases: crossed and nested grouping, random slopes, probit and
# cloglog links, offsets, I() terms, a two-level factor response, proportions with weights,
# an observation-level random effect and real crossed data (an InstEval subset).
# The simulated sets are written to ../glmm_nested.csv and ../glmm_crossed.csv (fixed seeds).
suppressMessages({library(lme4); library(jsonlite)})
source("glmmkit_data.R")  # load_ds(): the bundled data with glmmkit's level orders

set.seed(20261122)
# pupils in classes in schools: binomial, school-level slope
ns <- 30; nc <- 4; np <- 12
school <- rep(seq_len(ns), each = nc * np)
class <- rep(seq_len(ns * nc), each = np)
x <- rnorm(ns * nc * np)
b_s <- rnorm(ns, 0, 0.8); b_sx <- rnorm(ns, 0, 0.4); b_c <- rnorm(ns * nc, 0, 0.5)
eta <- -0.3 + 0.6 * x + b_s[school] + b_sx[school] * x + b_c[class]
nested <- data.frame(school = sprintf("s%02d", school), class = sprintf("c%d", (class - 1) %% nc + 1),
                     x = round(x, 4), y = rbinom(length(eta), 1, plogis(eta)),
                     trials = 1 + rpois(length(eta), 3))
nested$succ <- rbinom(nrow(nested), nested$trials, plogis(eta))
write.csv(nested, "../glmm_nested.csv", row.names = FALSE)

# subjects x items, every pair seen once or twice: Bernoulli and counts with exposure
nsub <- 60; nit <- 40
cr <- expand.grid(subj = seq_len(nsub), item = seq_len(nit))
cr <- cr[sample(nrow(cr), 3000, replace = TRUE), ]
cr$x <- round(rnorm(nrow(cr)), 4)
cr$cond <- sample(c("a", "b", "c"), nrow(cr), replace = TRUE)
u_s <- rnorm(nsub, 0, 0.9); u_sx <- rnorm(nsub, 0, 0.3); u_i <- rnorm(nit, 0, 0.6)
eta <- 0.2 + 0.5 * cr$x + c(a = 0, b = 0.4, c = -0.3)[cr$cond] + u_s[cr$subj] + u_sx[cr$subj] * cr$x + u_i[cr$item]
cr$y <- rbinom(nrow(cr), 1, plogis(eta))
cr$expo <- round(runif(nrow(cr), 0.5, 3), 3)
cr$cnt <- rpois(nrow(cr), cr$expo * exp(0.3 * eta))
cr$resp <- ifelse(cr$y == 1, "yes", "no")
cr$subj <- sprintf("S%02d", cr$subj); cr$item <- sprintf("I%02d", cr$item)
write.csv(cr, "../glmm_crossed.csv", row.names = FALSE, quote = TRUE)

prep_nested <- function() {
  d <- read.csv("../glmm_nested.csv", stringsAsFactors = TRUE); d
}
prep_crossed <- function() {
  d <- read.csv("../glmm_crossed.csv", stringsAsFactors = FALSE)
  d$subj <- factor(d$subj); d$item <- factor(d$item); d$cond <- factor(d$cond)
  d$resp <- factor(d$resp, levels = c("no", "yes")); d
}
prep_cbpp <- function() { d <- load_ds("cbpp"); d$obs <- factor(seq_len(nrow(d))); d }
prep_inst <- function() {
  d <- load_ds("InstEval")[1:6000, ]; d$s <- droplevels(d$s); d$d <- droplevels(d$d); d
}
cases <- list(
  list(id = "nested_binom", data = "nested", f = "y ~ x + (1 | school/class)", fam = "binomial"),
  list(id = "nested_binom_slope", data = "nested", f = "cbind(succ, trials - succ) ~ x + (1 + x | school) + (1 | school:class)", fam = "binomial"),
  list(id = "nested_prop_weights", data = "nested", f = "succ / trials ~ x + (1 | school/class)", fam = "binomial", w = "trials"),
  list(id = "crossed_bern", data = "crossed", f = "y ~ x + cond + (1 | subj) + (1 | item)", fam = "binomial"),
  list(id = "crossed_bern_slope", data = "crossed", f = "y ~ x + cond + (1 + x | subj) + (1 | item)", fam = "binomial"),
  list(id = "crossed_bern_uncorr", data = "crossed", f = "y ~ x + (x || subj) + (1 | item)", fam = "binomial"),
  list(id = "crossed_factor_response_I", data = "crossed", f = "resp ~ x + I(x^2) + (1 | subj) + (1 | item)", fam = "binomial"),
  list(id = "crossed_probit", data = "crossed", f = "y ~ x + cond + (1 | subj) + (1 | item)", fam = "binomial", link = "probit"),
  list(id = "crossed_cloglog", data = "crossed", f = "y ~ x + (1 | subj) + (1 | item)", fam = "binomial", link = "cloglog"),
  list(id = "crossed_pois_offset", data = "crossed", f = "cnt ~ x + cond + offset(log(expo)) + (1 | subj) + (1 | item)", fam = "poisson"),
  list(id = "crossed_pois_slope", data = "crossed", f = "cnt ~ x + (1 + x | subj) + (1 | item)", fam = "poisson"),
  list(id = "cbpp_olre", data = "cbpp", f = "cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", fam = "binomial"),
  list(id = "cbpp_prop_weights", data = "cbpp", f = "incidence / size ~ period + (1 | herd)", fam = "binomial", w = "size"),
  list(id = "spinal_slope", data = "spinal", f = "y ~ x + visit + (1 + visit | patient)", fam = "binomial"),
  list(id = "insteval_binary", data = "inst", f = "I(y > 3) ~ service + (1 | s) + (1 | d)", fam = "binomial")
)
out <- lapply(cases, function(cs) {
  d <- switch(cs$data, nested = prep_nested(), crossed = prep_crossed(), cbpp = prep_cbpp(),
              spinal = load_ds("spinal"), inst = prep_inst())
  fam <- if (cs$fam == "binomial") binomial(link = if (is.null(cs$link)) "logit" else cs$link) else poisson()
  if (!is.null(cs$w)) d$.w <- d[[cs$w]]
  t0 <- proc.time()[["elapsed"]]
  fit <- if (is.null(cs$w)) glmer(as.formula(cs$f), data = d, family = fam) else
    glmer(as.formula(cs$f), data = d, family = fam, weights = .w)
  elapsed <- proc.time()[["elapsed"]] - t0
  vc <- as.data.frame(VarCorr(fit))
  # lme4's PIRLS stops at tolPwrss = 1e-7, which leaves the Laplace value of non-canonical links off
  # by up to ~1e-3; the same deviance function with a tight tolerance, at lme4's estimates:
  refit <- function(...) if (is.null(cs$w)) glmer(as.formula(cs$f), data = d, family = fam, ...) else
    glmer(as.formula(cs$f), data = d, family = fam, weights = .w, ...)
  p <- c(getME(fit, "theta"), fixef(fit))
  dev_default <- refit(devFunOnly = TRUE)(p)
  dev_tight <- refit(devFunOnly = TRUE, control = glmerControl(tolPwrss = 1e-13))(p)
  const <- as.numeric(logLik(fit)) + 0.5 * dev_default  # log-likelihood constants the deviance leaves out
  list(id = cs$id, data = cs$data, formula = cs$f, family = cs$fam, link = if (is.null(cs$link)) NULL else cs$link,
       weights = if (is.null(cs$w)) NULL else cs$w,
       logLik = as.numeric(logLik(fit)), logLik_tight_at_estimates = -0.5 * dev_tight + const, theta = unname(getME(fit, "theta")),
       fixed = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       varcorr = lapply(seq_len(nrow(vc)), function(i) list(group = vc$grp[i], var1 = ifelse(is.na(vc$var1[i]), "", vc$var1[i]),
                    var2 = ifelse(is.na(vc$var2[i]), "", vc$var2[i]), vcov = vc$vcov[i], sdcor = vc$sdcor[i])),
       singular = isSingular(fit), nobs = nobs(fit), messages = fit@optinfo$conv$lme4$messages,
       fitted_first5 = unname(fitted(fit)[1:5]), seconds = elapsed)
})
cat(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE))
