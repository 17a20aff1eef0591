"""Figures, one module per research line (plotly), and the one way to save them."""
