
evt_0005ß«ÍÖ
billing-euRÛ
†
inv_2026_004701F-2026-004701cus_FR_51290"	
EURÐŒ*	
EURÐŒ2
2026-10-17:
2026-11-16B(https://pay.example.fr/i/inv_2026_004701P
cus_FR_51290Thomas Girardthomas.girard@example.fr2fr-FR:Europe/ParisRFR