# Reference fits for the betabinomial and tweedie families with a dispersion formula, and the betabinomial's
# Pearson residuals on cbpp, written by glmmTMB.
# Run from anywhere:  Rscript tests/data/families/make_families.R
# Writes, beside this script, families_cases.json (the fits; data paths relative to the repository
# root) and the simulated data sim_betabinomial_disp.csv and sim_tweedie_disp.csv (fixed seeds 201, 202).
suppressPackageStartupMessages({
  library(glmmTMB)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(script)) dirname(normalizePath(script)) else getwd()
root <- normalizePath(file.path(here, "..", "..", ".."))
rel <- function(p) sub(paste0("^", root, "/"), "", normalizePath(p))

write_sim <- function(d, name) {
  out <- d
  for (v in names(out)) if (is.double(out[[v]])) out[[v]] <- formatC(out[[v]], digits = 17, format = "g")
  f <- file.path(here, name)
  write.csv(out, f, row.names = FALSE, quote = FALSE)
  back <- read.csv(f)  # the fit uses exactly what the CSV holds
  back$g <- factor(back$g, levels = sort(unique(back$g)))
  list(data = back, file = rel(f))
}

## betabinomial: 600 rows in 30 groups, 1-25 trials, logit mu = -0.4 + 0.6 x + b, log phi = 1.5 + 0.8 x
set.seed(201)
n <- 600; G <- 30
g <- rep(seq_len(G), each = n / G); x <- round(rnorm(n), 4)
size <- sample(1:25, n, replace = TRUE)
mu <- plogis(-0.4 + 0.6 * x + rnorm(G, 0, 0.5)[g]); phi <- exp(1.5 + 0.8 * x)
k <- rbinom(n, size, rbeta(n, mu * phi, (1 - mu) * phi))
bb <- write_sim(data.frame(k = as.integer(k), size = as.integer(size), x = x, g = g), "sim_betabinomial_disp.csv")

## tweedie: 800 rows in 40 groups, power 1.6, log phi = 0.2 + 0.5 x
set.seed(202)
n <- 800; G <- 40
g <- rep(seq_len(G), each = n / G); x <- round(rnorm(n), 4)
mu <- exp(0.3 + 0.5 * x + rnorm(G, 0, 0.4)[g]); p <- 1.6; phi <- exp(0.2 + 0.5 * x)
N <- rpois(n, mu^(2 - p) / (phi * (2 - p)))
y <- vapply(seq_len(n), function(i)
  if (N[i] == 0) 0 else sum(rgamma(N[i], shape = (2 - p) / (p - 1), scale = phi[i] * (p - 1) * mu[i]^(p - 1))), 0)
tw <- write_sim(data.frame(y = y, x = x, g = g), "sim_tweedie_disp.csv")

vc_sd <- function(vc) {
  sd <- list()
  for (grp in names(vc)) { s <- attr(vc[[grp]], "stddev"); for (t in names(s)) sd[[paste0(grp, "|", t)]] <- unname(s[[t]]) }
  sd
}
nz <- function(v) if (length(v)) as.list(v) else structure(list(), names = character(0))

cases <- list()
add_case <- function(id, data, file, formula, dispformula, family, family_obj) {
  fit <- glmmTMB(as.formula(formula), dispformula = as.formula(dispformula), family = family_obj, data = data)
  ll <- logLik(fit)
  V <- vcov(fit, full = TRUE); se <- sqrt(diag(V)); nm <- names(se)
  cond <- se[!grepl("~", nm) & !grepl("^(theta_|psi|Tweedie)", nm)]
  disp <- se[startsWith(nm, "d~")]; names(disp) <- substring(names(disp), 3)
  fp <- family_params(fit)
  case <- list(id = id, data = file, formula = formula, dispformula = dispformula, family = family,
               link = "logit", logLik = as.numeric(ll), df = attr(ll, "df"), nobs = nobs(fit),
               fixef = list(cond = nz(fixef(fit)$cond), disp = nz(fixef(fit)$disp)),
               se = list(cond = nz(cond), disp = nz(disp)),
               sd = list(cond = vc_sd(VarCorr(fit)$cond)),
               family_params = if (length(fp)) list(power = unname(fp[[1]])) else structure(list(), names = character(0)),
               predict_disp = I(unname(predict(fit, type = "disp")[c(1, 100, 200, 300)])),
               converged = fit$fit$convergence == 0 && isTRUE(fit$sdr$pdHess))
  if (family == "tweedie") case$link <- "log"
  cases[[length(cases) + 1]] <<- case
  cat(sprintf("%-28s logLik %.6f df %d conv %s\n", id, case$logLik, case$df, case$converged))
}
add_case("sim_betabinomial_disp", bb$data, bb$file, "cbind(k, size - k) ~ x + (1 | g)", "~x",
         "betabinomial", betabinomial())
add_case("sim_tweedie_disp", tw$data, tw$file, "y ~ x + (1 | g)", "~x", "tweedie", tweedie())

## Pearson residuals of the betabinomial on cbpp.  glmmTMB's betabinomial()$variance is mu (1 - mu) (its
## documented "unscaled" variance), so residuals(type = "pearson") are (y - mu) sqrt(n) / sqrt(mu (1 - mu))
## without the factor (n + phi)/(1 + phi) of Var(k) = n mu (1 - mu)(n + phi)/(1 + phi); "scaled" divides
## that factor out with glmmTMB's own phi = sigma(fit): (y - mu) / sqrt(Var(k/n)).
data(cbpp, package = "lme4")
bbfit <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial(), data = cbpp)
bb_mu <- unname(fitted(bbfit)); bb_phi <- sigma(bbfit); bb_n <- cbpp$size
bb_raw <- unname(residuals(bbfit, type = "pearson"))
pearson <- list(id = "cbpp_betabinomial", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                logLik = as.numeric(logLik(bbfit)), phi = bb_phi, size = I(bb_n), fitted = I(bb_mu),
                pearson_glmmTMB = I(bb_raw), pearson_scaled = I(bb_raw * sqrt((1 + bb_phi) / (bb_n + bb_phi))))
cat(sprintf("%-28s logLik %.6f phi %.6f\n", "cbpp_betabinomial pearson", pearson$logLik, bb_phi))

info <- list(glmmTMB = as.character(packageVersion("glmmTMB")), TMB = as.character(packageVersion("TMB")),
             R = R.version.string,
             note = "ML fits; disp coefficients are glmmTMB's betad (log phi); predict_disp rows 1, 100, 200, 300 (1-based)")
writeLines(toJSON(list(info = info, cases = cases, pearson = pearson), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           file.path(here, "families_cases.json"))
cat("wrote", length(cases), "cases\n")
