# Reference values for the inference on zero-inflation and dispersion sub-models
# (tests/test_zero_models_inference.py), written by glmmTMB.
# Run from anywhere:  Rscript tests/data/zi/make_zi_profile.R   (writes tests/data/zi/zi_profile.json
# beside this script).
#
# * profile likelihood intervals of every part's coefficients: confint(method = "uniroot") (the
#   profile's crossing found by root finding) and confint(method = "profile") (interpolated between
#   profile points; null where glmmTMB 1.1.5's spline of the profile fails, as for the Owls model),
#   both glmmTMB's; the random-effect SD rows are on glmmTMB's log-SD scale (theta_1|site.1).
# * predict(se.fit = TRUE) of the fitted rows for every type, conditional on the random effects
#   (re.form = NULL) and at the population level (re.form = NA, newdata = the whole data: glmmTMB
#   1.1.5 refuses a subset of Salamanders, whose site is an ordered factor).  Rows are 0-based.
suppressPackageStartupMessages({
  library(glmmTMB)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(script)) dirname(normalizePath(script)) else getwd()
root <- normalizePath(file.path(here, "..", "..", ".."))

meta <- fromJSON(file.path(root, "tests/data/r_datasets/datasets.json"), simplifyVector = FALSE)
read_r_dataset <- function(name) {
  m <- meta[[name]]
  d <- read.csv(file.path(root, "tests/data/r_datasets", m$file), stringsAsFactors = FALSE)
  for (col in m$columns) {
    v <- col$name
    if (col$type %in% c("factor", "ordered"))
      d[[v]] <- factor(as.character(d[[v]]), levels = unlist(col$levels),
                       ordered = col$type == "ordered")
    else if (col$type == "integer") d[[v]] <- as.integer(d[[v]])
  }
  stopifnot(nrow(d) == m$rows)
  d
}
Sal <- read_r_dataset("Salamanders")
Owls <- read_r_dataset("Owls")

interval_list <- function(ci) {
  out <- list()
  for (i in seq_len(nrow(ci))) out[[rownames(ci)[i]]] <- unname(as.numeric(ci[i, 1:2]))
  out
}

predictions <- function(fit, data, types, rows) {
  out <- list()
  for (ty in types) {
    cond <- predict(fit, se.fit = TRUE, type = ty)
    pop <- predict(fit, newdata = data, se.fit = TRUE, type = ty, re.form = NA)
    out[[ty]] <- list(fit = unname(cond$fit[rows + 1]), se_fit = unname(cond$se.fit[rows + 1]),
                      fit_population = unname(pop$fit[rows + 1]),
                      se_fit_population = unname(pop$se.fit[rows + 1]))
  }
  out
}

make_case <- function(id, data, file, formula, ziformula, dispformula, family, family_obj, types, rows) {
  fit <- glmmTMB(as.formula(formula), ziformula = as.formula(ziformula), dispformula = as.formula(dispformula),
                 family = family_obj, data = data)
  stopifnot(fit$fit$convergence == 0, isTRUE(fit$sdr$pdHess))
  t0 <- proc.time()[["elapsed"]]
  uni <- confint(fit, method = "uniroot")
  t_uni <- proc.time()[["elapsed"]] - t0
  t0 <- proc.time()[["elapsed"]]
  prof <- tryCatch(confint(fit, method = "profile"), error = function(e) {
    cat(id, ": confint(method = 'profile') failed:", conditionMessage(e), "\n"); NULL })
  t_prof <- proc.time()[["elapsed"]] - t0
  cat(sprintf("%-16s logLik %.6f  uniroot %.1f s  profile %.1f s\n", id, as.numeric(logLik(fit)), t_uni, t_prof))
  list(id = id, data = file, formula = formula, ziformula = ziformula, dispformula = dispformula,
       family = family, logLik = as.numeric(logLik(fit)),
       estimates = as.list(setNames(uni[, 3], rownames(uni))),
       uniroot = interval_list(uni), profile = if (is.null(prof)) NULL else interval_list(prof),
       predict = c(list(rows = I(rows)), predictions(fit, data, types, rows)))
}

cases <- list(
  make_case("sal_zip_mined", Sal, "tests/data/r_datasets/Salamanders.csv", "count ~ spp + mined + (1 | site)",
            "~mined", "~1", "poisson", poisson(), c("link", "response", "conditional", "zprob", "zlink"),
            as.integer(c(0, 49, 100, 299, 350, 599, 643))),
  make_case("owls_nb2_disp", Owls, "tests/data/r_datasets/Owls.csv",
            "SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest)",
            "~0", "~FoodTreatment", "nbinom2", nbinom2(), c("link", "response", "conditional", "disp"),
            as.integer(c(0, 1, 100, 300, 598)))
)
info <- list(glmmTMB = as.character(packageVersion("glmmTMB")), R = R.version.string)
writeLines(toJSON(list(info = info, cases = cases), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           file.path(here, "zi_profile.json"))
cat("wrote", file.path(here, "zi_profile.json"), "\n")
