"""The assets, one module per kind of result; ``definitions.py`` loads every asset found here."""
