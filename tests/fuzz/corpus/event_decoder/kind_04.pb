
	unreach:1°ˆ‚×relance-smtpª,
cus_FR_10231550 5.1.1 mailbox unknown