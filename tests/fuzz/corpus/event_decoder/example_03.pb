
evt_0004˜»üÖ
billing-euR‰
†
inv_2026_004861F-2026-004861cus_FR_40788"	
EUR€ú*	
EUR€ú2
2026-10-26:
2026-11-25B(https://pay.example.fr/i/inv_2026_004861~
cus_FR_40788Boulangerie Moreau%contact@boulangerie-moreau.example.fr"+336123456782fr-FR:Europe/ParisJ ¿•ÍRFR