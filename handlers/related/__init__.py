"""Related tips: the identifiers a tip mentions and the tips that share them, without decrypting any tip.

One file per use case, each called inside the caller's transaction:

- ``indexing``: ``index_submitted_tip`` (submit, after ``create_tip``), ``index_texts`` (a follow-up answer),
  ``forget_tip`` (purge, cancellation);
- ``tip_view``: ``relations_for_officer`` (the "Liên quan" part of /tip, split by the officer's scope, audited);
- ``search``: ``search_for_officer`` (/search VALUE, audited by blind index);
- ``figures``: ``repeated_identifier_figures`` (/stats, /baocao; small cells hidden by the caller).

Links by hand (/link, "duplicate of") are ``storage.related.link_tips`` / ``unlink_tips`` / ``links_of``.
What is found and how is in ``extract``; what a leak reveals is in README, "Related tips".
"""
