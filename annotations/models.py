"""Annotation campaigns, items, assignments and judgments come with the annotation issue."""
