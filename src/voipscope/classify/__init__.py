"""Classification: the one arbiter that turns dissectors' findings into verdicts.

Everything that judges lives here (DESIGN §1): precedence between protocols, inherited
expectations, app attribution; later the behavioural models.
"""
