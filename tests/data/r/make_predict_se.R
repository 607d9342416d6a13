# Reference predictions with standard errors (glmmTMB's predict(se.fit = TRUE)) and lme4's partial
# re.form predictions.  Run from this folder: Rscript make_predict_se.R > ../predict_se_cases.json
# glmmTMB's SEs: TMB's generalized delta method, the uncertainty of every fixed parameter (beta,
# theta, sigma) and of the random effects jointly.  "fixed_theta": the same with theta (and sigma)
# held at the estimates, from lme4's fit: Var = z H^-1 z' + J V_beta J', H = Z'WZ + Sigma^-1,
# J = x - z H^-1 Z'WX (for an LMM Henderson's C^-1 of the mixed-model equations, times sigma^2),
# H and W from lme4's fit.
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
source("glmmkit_data.R")

fixed_theta_se <- function(fit, rows, pop, V) {
  X <- getME(fit, "X"); Z <- as.matrix(getME(fit, "Z")); L <- as.matrix(getME(fit, "Lambda"))
  mu <- fitted(fit)
  if (isGLMM(fit)) {
    fam <- family(fit); eta <- predict(fit)
    W <- weights(fit) * fam$mu.eta(eta)^2 / fam$variance(mu); s2 <- 1
  } else { W <- rep(1, nrow(X)); s2 <- sigma(fit)^2 }
  q <- ncol(Z)
  M <- t(L) %*% t(Z) %*% (W * Z) %*% L + diag(q)
  Hinv <- s2 * L %*% solve(M) %*% t(L)
  x <- X[rows, , drop = FALSE]; z <- Z[rows, , drop = FALSE]
  if (pop) return(sqrt(rowSums((x %*% V) * x)))
  J <- x - z %*% Hinv %*% t(Z) %*% (W * X) / s2
  sqrt(rowSums((z %*% Hinv) * z) + rowSums((J %*% V) * J))
}

cases <- list(
  list(id = "sleepstudy_ml", data = "sleepstudy", f = "Reaction ~ Days + (Days | Subject)", family = "gaussian",
       rows = c(1, 2, 10, 11, 25, 60, 100, 180)),
  list(id = "cbpp_binomial", data = "cbpp", f = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       family = "binomial", rows = c(1, 2, 3, 4, 10, 20, 30, 56)),
  list(id = "counts_poisson", data = "counts_ri", f = "y ~ x1 + x2 + (1 | g)", family = "poisson",
       rows = c(1, 2, 3, 50, 200, 501, 777, 1000))
)
out <- lapply(cases, function(cs) {
  d <- load_ds(cs$data)
  fam <- get(cs$family)()
  tmb <- glmmTMB(as.formula(cs$f), data = d, family = fam, REML = FALSE,
                 control = glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14)))
  l4 <- if (cs$family == "gaussian") lmer(as.formula(cs$f), data = d, REML = FALSE) else
    glmer(as.formula(cs$f), data = d, family = fam, control = glmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 1e-2, rhoend = 1e-10)))
  nd <- d[cs$rows, ]
  preds <- list()
  for (lev in c("population", "conditional")) for (type in c("link", "response")) {
    p <- predict(tmb, newdata = nd, re.form = if (lev == "population") NA else NULL, type = type, se.fit = TRUE)
    preds[[paste(lev, type, sep = "_")]] <- list(fit = unname(p$fit), se_fit = unname(p$se.fit))
  }
  # V_beta: lme4's sigma^2 (RX'RX)^-1 for the LMM; for a GLMM the beta block of the (theta, beta) Hessian's
  # inverse, taken from glmmTMB (lme4's finite-difference Hessian of cbpp differs from it by ~1%)
  V <- if (cs$family == "gaussian") as.matrix(vcov(l4)) else as.matrix(vcov(tmb)$cond)
  ft <- list(population = fixed_theta_se(l4, cs$rows, TRUE, V), conditional = fixed_theta_se(l4, cs$rows, FALSE, V),
             conditional_fit = unname(predict(l4, newdata = nd)))
  list(id = cs$id, data = cs$data, formula = cs$f, family = cs$family, rows = cs$rows - 1,
       glmmTMB_fixef = as.list(fixef(tmb)$cond), glmmTMB_loglik = as.numeric(logLik(tmb)),
       lme4_fixef = as.list(fixef(l4)), glmmTMB = preds, fixed_theta = ft)
})

# lme4's predict(re.form = ~(1 | g)): only the named random terms
pen <- load_ds("Penicillin")
pfit <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), data = pen)
ss <- load_ds("sleepstudy")
sfit <- lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), data = ss)
rows <- c(1, 2, 7, 30, 60, 100, 144)
partial <- list(
  list(id = "penicillin_plate", data = "Penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
       reml = TRUE, re_form = "~(1 | plate)", rows = rows - 1,
       pred = unname(predict(pfit, newdata = pen[rows, ], re.form = ~(1 | plate)))),
  list(id = "penicillin_sample", data = "Penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
       reml = TRUE, re_form = "~(1 | sample)", rows = rows - 1,
       pred = unname(predict(pfit, newdata = pen[rows, ], re.form = ~(1 | sample)))),
  list(id = "sleepstudy_slope_only", data = "sleepstudy",
       formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", reml = TRUE,
       re_form = "~(0 + Days | Subject)", rows = rows - 1,
       pred = unname(predict(sfit, newdata = ss[rows, ], re.form = ~(0 + Days | Subject))))
)
# REML (glmmTMB integrates beta with the random effects): conditional SEs only; its population SEs
# under REML (3.5 for sleepstudy's intercept, against lme4's 6.8) are not a delta-method SE of x'beta
tmbr <- glmmTMB(Reaction ~ Days + (Days | Subject), data = ss, REML = TRUE)
rr <- c(1, 2, 10, 11, 25, 60, 100, 180)
reml <- list(id = "sleepstudy_reml", rows = rr - 1,
             fit = unname(predict(tmbr, newdata = ss[rr, ], se.fit = TRUE)$fit),
             se_fit = unname(predict(tmbr, newdata = ss[rr, ], se.fit = TRUE)$se.fit))
cat(toJSON(list(se = out, partial = partial, reml = reml), auto_unbox = TRUE, digits = NA, pretty = TRUE))
