
evt_0002Ìú–×
billing-euRû
†
inv_2026_004907F-2026-004907cus_FR_20417"	
EUR€ù+*	
EUR€ù+2
2026-10-31:
2026-11-30B(https://pay.example.fr/i/inv_2026_004907p
cus_FR_20417Ateliers Lemaire SARL"compta@ateliers-lemaire.example.fr"+331426853002fr-FR:Europe/ParisRFR