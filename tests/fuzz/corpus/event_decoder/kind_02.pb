

evt_cust_1 ÉüÖcrm’b
`
cus_FR_10231Marie Dupontmarie.dupont@example.fr"+336123456782fr-FR:Europe/ParisBRFR