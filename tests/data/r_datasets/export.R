# Writes R's textbook GLMM data sets as CSVs beside this script, with datasets.json recording
# each set's origin, row count, column types and factor levels in R's order (the reader makes
# factor columns categoricals with exactly those levels, so contrasts match R's).
#   grouseticks (lme4), epil (MASS), Salamanders and Owls (glmmTMB), VerbAgg (lme4)
# Factors are written as their labels, numbers with 15 significant digits, no row names.
# Run from this folder:  Rscript export.R
suppressPackageStartupMessages({
  library(lme4)
  library(MASS)
  library(glmmTMB)
  library(jsonlite)
})

sets <- list(
  grouseticks = list(data = lme4::grouseticks, origin = "lme4::grouseticks"),
  epil = list(data = MASS::epil, origin = "MASS::epil"),
  Salamanders = list(data = glmmTMB::Salamanders, origin = "glmmTMB::Salamanders"),
  Owls = list(data = glmmTMB::Owls, origin = "glmmTMB::Owls"),
  VerbAgg = list(data = lme4::VerbAgg, origin = "lme4::VerbAgg")
)

column_type <- function(x) {
  if (is.ordered(x)) "ordered"
  else if (is.factor(x)) "factor"
  else if (is.logical(x)) "logical"
  else if (is.integer(x)) "integer"
  else if (is.numeric(x)) "numeric"
  else "character"
}

meta <- list()
for (name in names(sets)) {
  d <- as.data.frame(sets[[name]]$data)
  columns <- lapply(names(d), function(v) {
    x <- d[[v]]
    col <- list(name = v, type = column_type(x))
    if (is.factor(x)) col$levels <- I(levels(x))  # I(): a one-level factor stays a JSON list
    col
  })
  out <- d
  for (v in names(out)) {
    x <- out[[v]]
    if (is.factor(x)) out[[v]] <- as.character(x)
    else if (is.double(x)) out[[v]] <- ifelse(is.na(x), NA, formatC(x, digits = 15, format = "g"))
  }
  for (v in names(out)) if (is.character(out[[v]])) out[[v]] <- trimws(out[[v]])
  # only text columns are quoted; the formatted numbers stay bare
  text <- which(vapply(d, function(x) is.factor(x) || is.character(x), logical(1)))
  file <- paste0(name, ".csv")
  write.csv(out, file, row.names = FALSE, na = "", quote = if (length(text)) unname(text) else FALSE)
  meta[[name]] <- list(file = file, origin = sets[[name]]$origin, rows = nrow(d), columns = columns)
}
writeLines(toJSON(meta, auto_unbox = TRUE, pretty = TRUE), "datasets.json")
cat("R", R.version$major, R.version$minor, "lme4", as.character(packageVersion("lme4")),
    "glmmTMB", as.character(packageVersion("glmmTMB")), "MASS", as.character(packageVersion("MASS")), "\n")
