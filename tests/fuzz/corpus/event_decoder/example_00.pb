
evt_0001øçáÖ
billing-euRÛ
„
inv_2026_004812F-2026-004812cus_FR_10231"
EUR¤q*
EUR¤q2
2026-10-21:
2026-11-20B(https://pay.example.fr/i/inv_2026_004812R
cus_FR_10231Camille Durandcamille.durand@example.fr2fr-FR:Europe/ParisRFR