"""/v1's admin routes: customers, their top-ups and their keys (an admin key)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter

from smsgw_app.api.body import JsonBody
from smsgw_app.api.document import AUTH_ERRORS, SECURITY, errors
from smsgw_app.api.schemas import integer
from smsgw_app.api.sms import IdempotencyKey
from smsgw_app.api.v1.auth import admin_key
from smsgw_core.customers import MAX_CUSTOMER_NAME
from smsgw_core.errors import NotFound
from smsgw_core.keys import MAX_KEY_NAME
from smsgw_core.ledger import MAX_BALANCE
from smsgw_core.pagination import MAX_POSITION
from smsgw_core.services.accounts import MAX_DESCRIPTION, Accounts, TopUp
from smsgw_core.services.customers import MAX_RATE, Customers, CustomerView
from smsgw_core.services.keys import Keys, NewKey

CustomerId = Annotated[int, Parameter(ge=1, le=MAX_POSITION, description="the customer",
                                      schema_extra={"minimum": 1, "maximum": MAX_POSITION})]
Rate = Annotated[int, integer(1, MAX_RATE, f"recipients per second, 1-{MAX_RATE}")]


class NewCustomer(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(max_length=MAX_CUSTOMER_NAME)] = ""


class CreatedCustomer(msgspec.Struct):
    id: int
    name: str


class CustomerBody(msgspec.Struct):
    id: int
    name: str
    balance: int
    max_recipients_per_s: int | None


class LimitChange(msgspec.Struct):
    max_recipients_per_s: Rate | None  # null: the gateway's default (SMSGW_CUSTOMER_RATE)


class TopUpBody(msgspec.Struct):
    amount: Annotated[int, integer(1, MAX_BALANCE, f"amount to add, 1-{MAX_BALANCE}")]
    description: Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION)] = ""


class BalanceBody(msgspec.Struct):
    balance: int


class NewKeyBody(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(max_length=MAX_KEY_NAME)] = ""


class CreatedKey(msgspec.Struct):
    key_id: str
    key: str  # shown this once: only its hash is kept


BODY_ERRORS = (400, 413, 415)


class CustomersController(Controller):
    path = "/v1/customers"
    tags = ["v1 admin"]
    guards = [admin_key]
    security = SECURITY

    @post("/", operation_id="v1CreateCustomer", status_code=201, dto=JsonBody[NewCustomer],
          return_dto=None, responses=errors(*BODY_ERRORS, *AUTH_ERRORS, 503),
          summary="A new customer, with the next free id")
    async def create(self, data: NewCustomer, customers: Customers) -> CreatedCustomer:
        made = await customers.create(data.name)
        return CreatedCustomer(made.id, made.name)

    @get("/{customer_id:int}", operation_id="v1GetCustomer",
         responses=errors(400, *AUTH_ERRORS, 404, 503), summary="A customer and its balance")
    async def show(self, customer_id: CustomerId, customers: Customers) -> CustomerBody:
        return _body(await customers.show(customer_id))

    @patch("/{customer_id:int}", operation_id="v1SetCustomerLimit", dto=JsonBody[LimitChange],
           return_dto=None, responses=errors(*BODY_ERRORS, *AUTH_ERRORS, 404, 503),
           summary="Set (or, with null, clear) the customer's own send limit")
    async def set_limit(self, customer_id: CustomerId, data: LimitChange,
                        customers: Customers) -> CustomerBody:
        return _body(await customers.set_limit(customer_id, data.max_recipients_per_s))

    @post("/{customer_id:int}/topups", operation_id="v1TopUp", status_code=200,
          dto=JsonBody[TopUpBody], return_dto=None,
          responses=errors(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 503),
          summary="Add to the customer's balance (once per Idempotency-Key)")
    async def top_up(self, customer_id: CustomerId, data: TopUpBody, customers: Customers,
                     accounts: Accounts, idempotency_key: IdempotencyKey = None) -> BalanceBody:
        await customers.ensure(customer_id)
        balance = await accounts.top_up(
            TopUp(customer_id, data.amount, data.description, idempotency_key))
        return BalanceBody(balance)

    @post("/{customer_id:int}/keys", operation_id="v1CreateKey", status_code=201,
          dto=JsonBody[NewKeyBody], return_dto=None,
          responses=errors(*BODY_ERRORS, *AUTH_ERRORS, 404, 503),
          summary="A new key of the customer, shown once")
    async def create_key(self, customer_id: CustomerId, data: NewKeyBody, customers: Customers,
                         keys: Keys) -> CreatedKey:
        await customers.ensure(customer_id)
        issued = await keys.create(NewKey(customer_id, data.name))
        return CreatedKey(issued.record.key_id, issued.key)


class KeysController(Controller):
    path = "/v1/keys"
    tags = ["v1 admin"]
    guards = [admin_key]
    security = SECURITY

    @delete("/{key_id:str}", operation_id="v1RevokeKey", status_code=204,
            responses=errors(*AUTH_ERRORS, 404, 503), summary="Revoke a key for good")
    async def revoke(self, key_id: str, keys: Keys) -> None:
        if not await keys.revoke(key_id):
            raise NotFound(f"no key {key_id[:64]!r} that is not revoked already")


def _body(view: CustomerView) -> CustomerBody:
    c = view.customer
    return CustomerBody(c.id, c.name, view.balance, c.max_recipients_per_s)
