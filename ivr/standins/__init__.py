"""Stand-ins for the world outside: Twilio's Messages endpoint, a caller and a texter that follow
TwiML, the terminal phone, Try the line, and the synthetic demo people."""
