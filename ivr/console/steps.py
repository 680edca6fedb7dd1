"""What each step of a conversation was, in staff's words: the timeline's Step column.

The line stores a step under the name of the node the person was at when they keyed, said or texted
what the step holds (the call's first step is "start"). Those names are the dialogue's own; staff read
these words instead, and a name with no words here (a step since renamed, say) is still shown
readably. tests/test_staff_conversations.py finds every name the line can store and checks it is here.
"""

from ivr.line.dialogue import sms, turns, voice

# Where the line's runner stores steps it takes itself, outside either dialogue.
CALL_ANSWERED = "start"
NETWORK_WORD = "network_word"

STEP_WORDS = {
    CALL_ANSWERED: "Answered the call",
    voice.MENU: "Offered the main menu",
    voice.ABOUT: "Explained how information is used",
    turns.NHS_NUMBER: "Asked for the NHS number",
    voice.NHS_NUMBER_CONFIRM: "Read back the NHS number",
    turns.DATE_OF_BIRTH: "Asked for the date of birth",
    turns.CODE: "Sent the one-time code",
    voice.CANNOT_VERIFY: "Could not check who they are, offered a person",
    voice.CHECKED: "Told them their choice",
    voice.CONFIRM_CHOICE: "Read back the choice",
    voice.AFTER_CHOICE: "Offered what to do next",
    voice.TRANSFER: "Put the call through to staff",
    voice.CALLBACK_OFFER: "Offered a call back",
    voice.CALLBACK_CONFIRM_NUMBER: "Asked whether to call back the number they rang from",
    voice.CALLBACK_NUMBER: "Asked for a number to call back",
    voice.CALLBACK_NUMBER_READ_BACK: "Read back the number to call back",
    voice.CALLBACK_DONE: "Took the call-back request",
    voice.ENDED: "Ended the call",
    sms.IDLE: "Waiting for a request",
    sms.CONFIRM: "Read back the choice",
    NETWORK_WORD: "Texted a word the network answers (such as STOP)",
}


def describe_step(name: str) -> str:
    """A stored step's name in staff's words; a name without words becomes plain words ("nhs_number" "Nhs number")."""
    return STEP_WORDS.get(name) or name.replace("_", " ").strip().capitalize() or "Not named"
