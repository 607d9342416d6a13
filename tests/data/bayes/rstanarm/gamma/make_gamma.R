# rstanarm 2.21.3 posteriors of a Gamma GLMM on glmmkit's gamma_ri data (log and inverse links), default priors,
# 4 chains x 2000 kept draws; run from this folder: Rscript make_gamma.R > gamma_cases.json
# Summaries: mean and sd per parameter; sd_(Intercept)|g from the square root of Sigma draws.
suppressPackageStartupMessages({library(rstanarm); library(posterior); library(jsonlite)})
d <- read.csv("gamma_ri.csv"); d$g <- factor(d$g)
out <- list()
for (lk in c("log", "inverse")) {
  fit <- stan_glmer(y ~ x1 + x2 + (1 | g), data = d, family = Gamma(link = lk), chains = 4, iter = 3000, warmup = 1000, seed = 3, refresh = 0, cores = 1)
  dr <- as_draws_df(as.matrix(fit))
  keep <- c("(Intercept)", "x1", "x2", "shape", "Sigma[g:(Intercept),(Intercept)]")
  s <- lapply(keep, function(k) { v <- dr[[k]]; if (grepl("Sigma", k)) v <- sqrt(v); c(mean = mean(v), sd = sd(v)) })
  names(s) <- c("(Intercept)", "x1", "x2", "shape", "sd_(Intercept)|g")
  out[[lk]] <- s
}
cat(toJSON(out, digits = NA, auto_unbox = TRUE))
