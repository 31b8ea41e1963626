"""AWS Security Hub controls as a Pulumi CrossGuard policy pack (see controls.py)."""
