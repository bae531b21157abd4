"""botocore's Stubber for the few operations moto's server does not implement.

moto 5.2 has no ``codepipeline:PutJobSuccessResult`` / ``PutJobFailureResult``,
``sagemaker:UpdateEndpoint`` nor ``sagemaker:StopTrainingJob``, and it cannot show a
training job running or failing, or an endpoint updating (its jobs are Completed and its
endpoints InService at once). :class:`OperationStubber` answers only the operations it is
given — with responses botocore checks against the service's model — and lets every other
call of the same real client go to moto's server. :class:`SentParams` answers nothing: it
records what a call sent on its way to moto, for a field moto accepts and drops.
"""

from __future__ import annotations

from typing import Any

from botocore.stub import Stubber


class OperationStubber(Stubber):
    """A Stubber on ``operations`` (``"UpdateEndpoint"``…) of one client; ``calls`` records
    the parameters each stubbed call was made with."""

    def __init__(self, client: Any, *operations: str) -> None:
        super().__init__(getattr(client, "raw", client))
        self.operations = operations
        self.service = self.client.meta.service_model.service_id.hyphenize()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _handlers(self) -> list[tuple[str, Any, str, bool]]:
        handlers = []
        for op in self.operations:
            handlers.append(
                (
                    f"before-parameter-build.{self.service}.{op}",
                    self._record_and_check,
                    f"{self._expected_params_event_id}-{op}",
                    True,
                )
            )
            handlers.append(
                (
                    f"before-call.{self.service}.{op}",
                    self._get_response_handler,
                    f"{self._event_id}-{op}",
                    False,
                )
            )
        return handlers

    def activate(self) -> None:
        for event, handler, unique_id, first in self._handlers():
            register = (
                self.client.meta.events.register_first
                if first
                else self.client.meta.events.register
            )
            register(event, handler, unique_id=unique_id)

    def deactivate(self) -> None:
        for event, handler, unique_id, _ in self._handlers():
            self.client.meta.events.unregister(event, handler, unique_id=unique_id)

    def _record_and_check(
        self, model: Any, params: dict[str, Any], context: Any, **kwargs: Any
    ) -> None:
        self.calls.append((model.name, dict(params)))
        self._assert_expected_params(model, params, context, **kwargs)

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()
        if exc[0] is None:
            self.assert_no_pending_responses()


class SentParams:
    """Records the parameters of ``operations`` on one client while the calls go on to
    moto unchanged (botocore still validates them against the service's model) — for what
    moto accepts but does not keep, such as CreateEndpointConfig's ShadowProductionVariants."""

    def __init__(self, client: Any, *operations: str) -> None:
        self.client = getattr(client, "raw", client)
        self.operations = operations
        self.service = self.client.meta.service_model.service_id.hyphenize()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _record(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def __enter__(self) -> SentParams:
        for op in self.operations:
            self.client.meta.events.register(
                f"before-parameter-build.{self.service}.{op}",
                self._record,
                unique_id=f"sent-params-{op}",
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        for op in self.operations:
            self.client.meta.events.unregister(
                f"before-parameter-build.{self.service}.{op}", unique_id=f"sent-params-{op}"
            )
