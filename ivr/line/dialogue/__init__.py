"""The conversation, written once for both channels: pure state machines, (state, event) in, a turn out.

turns.py holds what both channels share as types (events, effects, prompts, turns, the state every
conversation keeps); rules.py the rules both keep alike (identity limits and codes per conversation,
one follow-up per conversation, what a failed or locked check leads to, the current-choice read-out);
voice.py and sms.py are the two machines, which differ only in what they say and how input arrives.
No Flask, no Twilio, no database: the runner performs the effects a turn asks for.
"""
