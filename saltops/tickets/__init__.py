"""Tickets: a request made from a template, approved step by step, carried out by Salt.

Modules (nothing here imports Salt; the runner hands in the executor):

* ``schema``: the ``ticket_*`` tables (Alembic branch ``tickets``).
* ``conditions``: the ``when:`` expression language of approval steps:
  ``parse(text, fields)``, ``evaluate(node, form)``, ``holds(text, form)``.
* ``templates``: ``check(doc, check_runner)``, ``reference_problems(conn, body)``,
  ``save(store, actor, text, now, check_runner)`` (a new version),
  ``get(conn, name, version=None)``, ``listing(conn)``,
  ``validate_form(body, form, host_exists)``, ``substitute(value, form)``.
* ``workflow``: ``Workflow(store, executor=None, clock=time.time, ops_role="ops")``
  with the operations, each taking the acting user first:
  ``create(actor, template, form, title)``, ``show(actor, ticket_id)``,
  ``list(actor, scope="mine"|"to_approve"|"all", state, template, limit)``,
  ``approve(actor, ticket_id, comment)``, ``reject(...)``, ``return_(actor, ticket_id, comment)``,
  ``resubmit(actor, ticket_id, form, comment)``, ``cancel(actor, ticket_id, comment)``,
  ``comment(actor, ticket_id, text)``, ``delegate(actor, to, until, since)``,
  ``confirm(actor, ticket_id, comment)``, ``retry(actor, ticket_id)``,
  ``rate(actor, ticket_id, score, comment)``, ``report(actor, since)``;
  ``run_action(action_id)`` and ``pending_actions()`` for the automated ticket.
  The states: ``TICKET_STATES``, ``APPROVAL_STATES``, ``ACTION_STATES``; a
  refusal is ``workflow.Refused``; ``summarise(rows)`` is the report's arithmetic.

People (users, departments, roles, managers, delegates) live in :mod:`saltops.org`.
"""
