"""Related tips: the identifiers a tip mentions and the tips that share them, without decrypting any tip.

One file per use case, each called inside the caller's transaction:

- ``indexing``: ``index_submitted_tip`` (submit, after ``create_tip``), ``index_texts`` (a follow-up answer),
  ``forget_tip`` (purge: index rows and links);
- ``tip_view``: ``relations_for_officer`` and ``related_lines`` (the "Liên quan" end of /tip, split by the
  officer's scope, audited);
- ``search``: ``search_for_officer`` and ``search_command`` (/search VALUE, audited by blind index);
- ``links``: ``link_command`` (/link REF OTHER [trung], audited on both tips);
- ``figures``: ``repeated_identifier_figures`` and ``repeated_section`` (the end of /stats and /baocao);
- ``reindex``: ``reindex`` (`tinbao related reindex`: a new index key, every tip indexed again).

Links are rows of ``storage.related`` (``link_tips`` / ``unlink_tips`` / ``links_of``).
What is found and how is in ``extract``; what a leak reveals is in README, "Related tips".
"""
