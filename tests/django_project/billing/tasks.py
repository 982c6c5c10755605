"""Tasks of the billing app: routed to the billing queue by CELERY_TASK_ROUTES."""

from orders.models import Order

from conveyor import shared_task


@shared_task
def invoice_total(price: int) -> int:
    return price * Order.objects.filter(paid=True).count()
