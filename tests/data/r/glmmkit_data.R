# Shared by the make_*.R reference scripts: glmmkit's bundled CSVs as R data frames, with the
# factor levels (and ordered flags) that glmmkit's datasets.json records.  Run from this folder.
suppressMessages(library(jsonlite))
dd <- "../../../src/glmmkit/datasets/data"
spec <- fromJSON(file.path(dd, "datasets.json"), simplifyVector = FALSE)
load_ds <- function(name) {
  s <- spec[[name]]
  d <- read.csv(file.path(dd, s$file), stringsAsFactors = FALSE)
  for (col in s$columns) if (col$type %in% c("factor", "ordered"))
    d[[col$name]] <- factor(as.character(d[[col$name]]), levels = unlist(col$levels), ordered = col$type == "ordered")
  d
}
