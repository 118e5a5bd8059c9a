"""Zalo OA error codes, and what each does to a reply and to a reminder."""

from __future__ import annotations

# Zalo's error codes and what each does here. Meanings: the OA error appendix as compiled, with Zalo's own
# messages, in github.com/VinFleet/jerkchillapp, docs/ZALO_API.md §14.2 (OA) and §14.3 (-124, ZBS), 2026;
# -216 → refresh and send again is also what Chatwoot's Zalo OA channel does (chatwoot/chatwoot,
# app/services/zalo/send_on_zalo_service.rb).
#
#   code  meaning                                            a reply                    a reminder
#   -216  access token is invalid                            refresh once, retry once   same; then transient
#   -220  access token is expired or removed                 refresh once, retry once   same; then transient
#   -124  access token invalid (ZBS family)                  refresh once, retry once   same; then transient
#   -32   the app or the OA reached its rate limit           wait 2 s, try once more    wait 30 s (all reminders)
#   -211  out of quota (the OA's)                            drop the rest of the chat  transient (tried later)
#   -218  out of quota receive (this citizen's)              drop the rest of the chat  rejected
#   -213  user has not followed the OA                       drop the rest of the chat  blocked: unsubscribed
#   -217  user has blocked invitations from the OA           drop the rest of the chat  rejected
#   -227  user banned, or inactive on Zalo for 45+ days      drop the rest of the chat  rejected
#   -230  no interaction with the OA in the past 7 days      drop the rest of the chat  the template, else outside_window
#   -232  no interaction, or the last one expired            drop the rest of the chat  the template, else outside_window
#   -244  user restricted this message type from the OA      drop the rest of the chat  the template, else rejected
#   -249  template does not support sending by UID           (templates only)           rejected; the operator is told
#   -221  the OA needs to be verified for this               drop the rest of the chat  rejected; the operator is told
#   -224  the OA needs a higher tier package                 drop the rest of the chat  rejected; the operator is told
#   -234  this message type cannot be sent at night          (never: replies go 24/24)  transient (tried later)
#   other (-201 invalid parameter, -240, -248 policy, …)    that part only             rejected; no answer: transient
TOKEN_ERRORS = (-216, -220, -124)
NOT_FOLLOWER = -213
OUTSIDE_WINDOW = (-230, -232)
OA_QUOTA, USER_QUOTA = -211, -218
RATE_LIMITED = -32
BLOCKED_INVITES, INACTIVE, RESTRICTED = -217, -227, -244
TEMPLATE_NOT_BY_UID = -249
OA_NOT_ELIGIBLE = (-221, -224)
NIGHT = -234
# A reply refused for one of these reasons would be refused for every other part of it too.
CHAT_UNREACHABLE = {NOT_FOLLOWER, *OUTSIDE_WINDOW, OA_QUOTA, USER_QUOTA, BLOCKED_INVITES, INACTIVE, RESTRICTED,
                    *OA_NOT_ELIGIBLE}
WHY_UNREACHABLE = {
    NOT_FOLLOWER: "the citizen does not follow the OA", OA_QUOTA: "the OA's message quota is used up",
    USER_QUOTA: "this citizen's message quota is used up", BLOCKED_INVITES: "the citizen blocks the OA's messages",
    INACTIVE: "the citizen's Zalo account is banned or unused for 45 days", RESTRICTED:
    "the citizen restricted this kind of message", -221: "the OA must be verified for this",
    -224: "the OA's package does not allow this", -230: "outside the 7-day window", -232: "outside the 7-day window",
}

