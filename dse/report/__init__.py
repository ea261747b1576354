"""Figures (seaborn, Agg) and the HTML report."""
