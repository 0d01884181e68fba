"""RecurrentShop's README, docs and examples ported to rshop (issue 12's acceptance), one module each."""
