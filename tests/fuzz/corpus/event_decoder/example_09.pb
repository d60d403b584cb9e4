
evt_0010∞€¶ÿ
billing-euz@
dsp_2026_0117inv_2026_004861livraison du 12/10 incompl√®te