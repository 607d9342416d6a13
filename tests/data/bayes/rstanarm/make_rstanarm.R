# rstanarm reference posteriors for glmmkit's Bayesian fitters (blmer / bglmer).
#
# Every case is fitted with rstanarm's DEFAULT priors (stan_glmer / stan_lmer / stan_glmer.nb;
# prior_summary() recorded, including the autoscaled scales), 4 chains, iter = 4000,
# warmup = 1000 (12000 kept draws), a fixed seed, and summarised per parameter under lme4's
# names: fixed effects as lme4 names them, sd_T|G and cor_T2.T1|G (rstanarm's Sigma[G:T2,T1]
# covariance draws are turned into SDs and correlations draw by draw before summarising),
# sigma, and theta (rstanarm's reciprocal_dispersion) for the negative binomial.
# Statistics: mean, sd, 2.5/50/97.5 % quantiles (type 7), rank-normalised split R-hat, bulk and
# tail ESS, MCSE of the mean (all from the posterior package), plus mean and sd of the random
# effects b for the first 3 levels of every grouping factor.
#
# Timing: each case is fitted twice with the same settings and seed, once with cores = 1
# (chains run one after another) and once with cores = 2 (two chains at a time); the wall time
# of each whole stan_* call is recorded, and rstan's get_elapsed_time() per chain (warmup and
# sampling separately). ess_per_s = min over the reported parameters of bulk ESS divided by
# sampling_time_s, the sum over the 4 chains of (warmup + sample) elapsed time of the cores = 1
# fit (pure sampler time, chains sequential; excludes R's pre- and post-processing).
# ess_per_s_wall_seq and ess_per_s_wall_par divide by the whole-call wall times instead.
# The posterior statistics come from the cores = 1 fit.
#
# Data are the CSVs beside this script, exported from glmmkit.datasets (cbpp, sleepstudy,
# counts_ri) so both sides use identical data; tiny_gauss.csv is simulated here (8 groups).
#
# timing_default_settings repeats the timing at glmmkit's defaults (iter = 2000, cores = 1).
# prior_only holds the same summaries from prior-only draws (prior_PD = TRUE).
#
# Run from this folder:  Rscript make_rstanarm.R [case ...]
# Each case is cached in parts/<case>.json (delete it to refit); all parts present are then
# combined into rstanarm_cases.json.
suppressPackageStartupMessages({
  library(rstanarm)
  library(posterior)
  library(jsonlite)
})

ITER <- 4000L
WARMUP <- 1000L
CHAINS <- 4L
SEED <- 20261202L
N_LEVELS_B <- 3L

read_data <- function(file, factors) {
  d <- read.csv(file, stringsAsFactors = FALSE)
  for (f in factors) d[[f]] <- factor(d[[f]])  # integer labels sort numerically, strings alphabetically
  d
}

make_tiny <- function(file) {
  if (!file.exists(file)) {
    set.seed(8)
    g <- factor(rep(sprintf("s%d", 1:8), each = 6))
    x <- round(rnorm(48), 4)
    b <- rnorm(8, 0, 0.8)
    y <- round(1 + 0.5 * x + b[as.integer(g)] + rnorm(48, 0, 1), 4)
    write.csv(data.frame(y = y, x = x, g = g), file, row.names = FALSE)
  }
  read_data(file, "g")
}

cases <- list(
  cbpp = list(
    description = "binomial logit, cbind(incidence, size - incidence) ~ period + (1 | herd)",
    data = function() read_data("cbpp.csv", c("herd", "period")), data_file = "cbpp.csv",
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
    fit = function(d, cores, iter = ITER, ...) stan_glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                        data = d, family = binomial(link = "logit"),
                                        chains = CHAINS, iter = iter, warmup = WARMUP,
                                        cores = cores, seed = SEED, refresh = 0, ...),
    fitter = "stan_glmer", family = "binomial", link = "logit"),
  sleepstudy = list(
    description = "gaussian identity, Reaction ~ Days + (Days | Subject)",
    data = function() read_data("sleepstudy.csv", "Subject"), data_file = "sleepstudy.csv",
    formula = "Reaction ~ Days + (Days | Subject)",
    fit = function(d, cores, iter = ITER, ...) stan_lmer(Reaction ~ Days + (Days | Subject), data = d,
                                       chains = CHAINS, iter = iter, warmup = WARMUP,
                                       cores = cores, seed = SEED, refresh = 0, ...),
    fitter = "stan_lmer", family = "gaussian", link = "identity"),
  counts_poisson = list(
    description = "poisson log, y ~ x1 + (1 | g) on glmmkit's counts_ri",
    data = function() read_data("counts_ri.csv", c("g", "x2")), data_file = "counts_ri.csv",
    formula = "y ~ x1 + (1 | g)",
    fit = function(d, cores, iter = ITER, ...) stan_glmer(y ~ x1 + (1 | g), data = d, family = poisson(link = "log"),
                                        chains = CHAINS, iter = iter, warmup = WARMUP,
                                        cores = cores, seed = SEED, refresh = 0, ...),
    fitter = "stan_glmer", family = "poisson", link = "log"),
  counts_nb = list(
    description = "negative binomial (NB2) log, y ~ x1 + (1 | g) on glmmkit's counts_ri",
    data = function() read_data("counts_ri.csv", c("g", "x2")), data_file = "counts_ri.csv",
    formula = "y ~ x1 + (1 | g)",
    fit = function(d, cores, iter = ITER, ...) stan_glmer.nb(y ~ x1 + (1 | g), data = d, link = "log",
                                           chains = CHAINS, iter = iter, warmup = WARMUP,
                                           cores = cores, seed = SEED, refresh = 0, ...),
    fitter = "stan_glmer.nb", family = "negative_binomial_2", link = "log"),
  tiny_gauss = list(
    description = "gaussian identity, y ~ x + (1 | g), 8 groups of 6 (simulated; for SBC / cross checks)",
    data = function() make_tiny("tiny_gauss.csv"), data_file = "tiny_gauss.csv",
    formula = "y ~ x + (1 | g)",
    fit = function(d, cores, iter = ITER, ...) stan_lmer(y ~ x + (1 | g), data = d,
                                       chains = CHAINS, iter = iter, warmup = WARMUP,
                                       cores = cores, seed = SEED, refresh = 0, ...),
    fitter = "stan_lmer", family = "gaussian", link = "identity")
)

# Draws (iterations x chains x variables) in lme4 vocabulary.
lme4_draws <- function(fit) {
  a <- as.array(fit$stanfit)
  nm <- dimnames(a)[[3]]
  out <- list()
  fixed <- names(fixef(fit))
  for (f in fixed) out[[f]] <- a[, , f]
  sig <- grep("^Sigma\\[", nm, value = TRUE)
  parts <- regmatches(sig, regexec("^Sigma\\[(.+):(.+),(.+)\\]$", sig))
  groups <- unique(vapply(parts, `[`, "", 2))
  for (g in groups) {
    rows <- Filter(function(p) p[2] == g, parts)
    diag_terms <- vapply(Filter(function(p) p[3] == p[4], rows), `[`, "", 3)
    sds <- list()
    for (t in diag_terms) {
      sds[[t]] <- sqrt(a[, , sprintf("Sigma[%s:%s,%s]", g, t, t)])
      out[[sprintf("sd_%s|%s", t, g)]] <- sds[[t]]
    }
    for (p in rows) if (p[3] != p[4]) {
      out[[sprintf("cor_%s.%s|%s", p[3], p[4], g)]] <- a[, , p[1]] / (sds[[p[3]]] * sds[[p[4]]])
    }
  }
  if ("sigma" %in% nm) out[["sigma"]] <- a[, , "sigma"]
  if ("reciprocal_dispersion" %in% nm) out[["theta"]] <- a[, , "reciprocal_dispersion"]
  out
}

summ <- function(x) {
  q <- quantile(as.vector(x), c(0.025, 0.5, 0.975), names = FALSE)
  list(mean = mean(x), sd = sd(as.vector(x)), q2.5 = q[1], q50 = q[2], q97.5 = q[3],
       rhat = posterior::rhat(x), ess_bulk = posterior::ess_bulk(x),
       ess_tail = posterior::ess_tail(x), mcse_mean = posterior::mcse_mean(x))
}

ranef_summary <- function(fit) {
  a <- as.array(fit$stanfit)
  nm <- grep("^b\\[", dimnames(a)[[3]], value = TRUE)
  nm <- nm[!grepl("_NEW_", nm)]
  p <- regmatches(nm, regexec("^b\\[(\\S+) ([^:]+):(.+)\\]$", nm))
  recs <- list()
  for (g in unique(vapply(p, `[`, "", 3))) {
    pg <- Filter(function(v) v[3] == g, p)
    lv <- unique(vapply(pg, `[`, "", 4))[seq_len(N_LEVELS_B)]
    for (v in pg) if (v[4] %in% lv) {
      s <- summ(a[, , v[1]])
      recs[[length(recs) + 1L]] <- c(list(group = g, level = v[4], term = v[2], rstanarm_name = v[1]), s)
    }
  }
  recs
}

sampler_info <- function(sf) {
  sp <- rstan::get_sampler_params(sf, inc_warmup = FALSE)
  list(
    adapt_delta = sf@stan_args[[1]]$control$adapt_delta,
    max_treedepth = sf@stan_args[[1]]$control$max_treedepth,
    divergences = rstan::get_num_divergent(sf),
    max_treedepth_hits = rstan::get_num_max_treedepth(sf),
    bfmi = as.numeric(rstan::get_bfmi(sf)),
    stepsize = vapply(sp, function(m) m[1, "stepsize__"], 0),
    mean_n_leapfrog = vapply(sp, function(m) mean(m[, "n_leapfrog__"]), 0),
    total_n_leapfrog_sampling = sum(vapply(sp, function(m) sum(m[, "n_leapfrog__"]), 0))
  )
}

elapsed <- function(sf) {
  e <- rstan::get_elapsed_time(sf)
  list(warmup = unname(e[, "warmup"]), sample = unname(e[, "sample"]))
}

prior_info <- function(fit) {
  ps <- prior_summary(fit)
  keep <- function(x) if (is.null(x)) NULL else lapply(unclass(x), function(v) if (is.null(v)) NA else v)
  list(prior = keep(ps$prior), prior_intercept = keep(ps$prior_intercept),
       prior_aux = keep(ps$prior_aux), prior_covariance = keep(ps$prior_covariance),
       printed = capture.output(print(ps)))
}

run_case <- function(name) {
  cs <- cases[[name]]
  d <- cs$data()
  load_before <- readLines("/proc/loadavg")
  t_seq <- system.time(fit1 <- cs$fit(d, 1L))[["elapsed"]]
  t_par <- system.time(fit2 <- cs$fit(d, 2L))[["elapsed"]]
  dr <- lme4_draws(fit1)
  pars <- lapply(dr, summ)
  e1 <- elapsed(fit1$stanfit)
  sampling_time <- sum(e1$warmup) + sum(e1$sample)
  min_ess <- min(vapply(pars, function(p) p$ess_bulk, 0))
  same <- isTRUE(all.equal(as.array(fit1$stanfit), as.array(fit2$stanfit)))
  list(
    name = name, description = cs$description, formula = cs$formula, fitter = cs$fitter,
    family = cs$family, link = cs$link, data_file = cs$data_file,
    data_md5 = unname(tools::md5sum(cs$data_file)), nobs = nrow(d),
    settings = list(chains = CHAINS, iter = ITER, warmup = WARMUP, draws_per_chain = ITER - WARMUP,
                    seed = SEED, priors = "rstanarm defaults"),
    prior_summary = prior_info(fit1),
    parameters = pars,
    random_effects = ranef_summary(fit1),
    sampler = sampler_info(fit1$stanfit),
    timing = list(
      elapsed_seq = e1, elapsed_par = elapsed(fit2$stanfit),
      sampling_time_s = sampling_time,
      wall_seq_s = t_seq, wall_par_s = t_par,
      min_ess_bulk = min_ess,
      min_ess_bulk_parameter = names(pars)[which.min(vapply(pars, function(p) p$ess_bulk, 0))],
      ess_per_s = min_ess / sampling_time,
      ess_per_s_wall_seq = min_ess / t_seq,
      ess_per_s_wall_par = min_ess / t_par,
      par_draws_identical_to_seq = same,
      definition = paste("ess_per_s = min over parameters of bulk ESS / sampling_time_s;",
                         "sampling_time_s = sum over chains of rstan get_elapsed_time warmup + sample",
                         "of the cores = 1 fit; wall_*_s = elapsed time of the whole stan_* call",
                         "with cores = 1 (seq) and cores = 2 (par)"),
      loadavg_before = load_before,
      machine = paste(Sys.info()[["sysname"]], Sys.info()[["machine"]], parallel::detectCores(), "cores"))
  )
}

# Prior-only draws (prior_PD = TRUE, same settings, cores = 1): quantiles of every parameter under
# rstanarm's default priors, so a reimplementation of the priors can be checked on its own
# (e.g. for gaussian models rstanarm's decov prior is on Sigma / sigma^2, which these show).
run_prior <- function(name) {
  cs <- cases[[name]]
  fit <- cs$fit(cs$data(), 1L, prior_PD = TRUE)
  list(parameters = lapply(lme4_draws(fit), summ), sampler = sampler_info(fit$stanfit))
}

# Speed at glmmkit's default settings (4 chains, tune = warmup = 1000, draws = 1000, so
# iter = 2000), cores = 1, same seed: the like-for-like baseline for blmer / bglmer's ESS/s.
run_timing_default <- function(name) {
  cs <- cases[[name]]
  d <- cs$data()
  load_before <- readLines("/proc/loadavg")
  wall <- system.time(fit <- cs$fit(d, 1L, iter = 2000L))[["elapsed"]]
  e <- elapsed(fit$stanfit)
  ess <- vapply(lme4_draws(fit), posterior::ess_bulk, 0)
  list(iter = 2000L, warmup = WARMUP, chains = CHAINS, cores = 1L, elapsed = e,
       sampling_time_s = sum(e$warmup) + sum(e$sample), wall_s = wall,
       ess_bulk = as.list(ess), min_ess_bulk = min(ess), min_ess_bulk_parameter = names(ess)[which.min(ess)],
       ess_per_s = min(ess) / (sum(e$warmup) + sum(e$sample)), ess_per_s_wall = min(ess) / wall,
       loadavg_before = load_before)
}

args <- commandArgs(trailingOnly = TRUE)
todo <- if (length(args)) args else names(cases)
dir.create("parts", showWarnings = FALSE)
for (nm in todo) {
  f <- file.path("parts", paste0(nm, ".json"))
  if (file.exists(f)) next
  message("fitting ", nm, " ...")
  res <- run_case(nm)
  writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = TRUE), f)
  message(sprintf("%s: min bulk ESS %.0f, sampling %.1f s, ESS/s %.1f", nm, res$timing$min_ess_bulk,
                  res$timing$sampling_time_s, res$timing$ess_per_s))
}
for (nm in todo) {
  f <- file.path("parts", paste0(nm, ".prior.json"))
  if (file.exists(f)) next
  message("prior-only draws for ", nm, " ...")
  writeLines(toJSON(run_prior(nm), auto_unbox = TRUE, digits = NA, na = "null", null = "null",
                    pretty = TRUE), f)
}
for (nm in todo) {
  f <- file.path("parts", paste0(nm, ".timing_default.json"))
  if (file.exists(f)) next
  message("timing at glmmkit's default settings for ", nm, " ...")
  writeLines(toJSON(run_timing_default(nm), auto_unbox = TRUE, digits = NA, na = "null",
                    null = "null", pretty = TRUE), f)
}

done <- Filter(function(nm) file.exists(file.path("parts", paste0(nm, ".json"))), names(cases))
all_cases <- lapply(done, function(nm) fromJSON(file.path("parts", paste0(nm, ".json")), simplifyVector = FALSE))
names(all_cases) <- done
for (nm in done) {
  f <- file.path("parts", paste0(nm, ".prior.json"))
  if (file.exists(f)) all_cases[[nm]]$prior_only <- fromJSON(f, simplifyVector = FALSE)
  f <- file.path("parts", paste0(nm, ".timing_default.json"))
  if (file.exists(f)) all_cases[[nm]]$timing_default_settings <- fromJSON(f, simplifyVector = FALSE)
}
out <- list(
  generator = "make_rstanarm.R",
  versions = list(R = R.version.string, rstanarm = as.character(packageVersion("rstanarm")),
                  rstan = as.character(packageVersion("rstan")),
                  posterior = as.character(packageVersion("posterior"))),
  cases = all_cases)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = TRUE),
           "rstanarm_cases.json")
message("wrote rstanarm_cases.json with ", length(done), " cases")
