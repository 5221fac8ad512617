"""The campaign: one decision loop and the state it owns.

- :mod:`.runner`: :class:`~orchestrator.campaign.runner.CampaignRunner`, the one loop
  (sync -> propose -> dispatch -> follow -> record) over an executor;
- :mod:`.lifecycle`: an experiment's statuses and the transitions between them (the only code
  that changes a status);
- :mod:`.record`: the loop's record step (outcomes stored, then told to the planner);
- :mod:`.restore`: what a resumed campaign starts from; :mod:`.warm_start`: earlier campaigns'
  measurements as a head start;
- :mod:`.config`: campaign YAML -> validated :class:`~orchestrator.campaign.config.LoadedCampaign`;
- :mod:`.approval`: what people do to a campaign (approve, reject, add, pause, resume);
- :mod:`.summary`: how a campaign stands (best, hits, Pareto front) in words and JSON.

Modules are imported by name (``from orchestrator.campaign.runner import CampaignRunner``) so
that ``qdlab --help`` does not import bluesky.
"""
