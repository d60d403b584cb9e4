
evt_0009躀�
billing-eurb
inv_2026_004701
2026-11-27	
EURЌ"8paiement par virement à réception du règlement client