"""Tasks of the orders app, written as for Celery (only the import changed)."""

from django.db import connection

from conveyor import shared_task

from .models import Order


@shared_task
def mark_paid(order_id: int) -> str:
    order = Order.objects.get(pk=order_id)
    order.paid = True
    order.save()
    return order.number


@shared_task
def count_orders() -> int:
    return Order.objects.count()


@shared_task
def break_connection() -> bool:
    """Break this thread's database connection behind Django's back (a database restart)."""
    Order.objects.exists()  # make sure there is a connection to break
    connection.connection.close()
    return True


@shared_task
async def ping() -> str:
    """An async task in a Django project: it runs on the worker's loop, beside the ORM tasks."""
    return "pong"
