from django.db import transaction
from django.http import HttpRequest, JsonResponse

from .models import Order
from .tasks import mark_paid


def create_order(request: HttpRequest) -> JsonResponse:
    """Create an order and enqueue its task on commit; ?fail=1 fails after enqueueing (rollback)."""
    with transaction.atomic():
        order = Order.objects.create(number=request.GET.get("number", "A-1"))
        result = mark_paid.delay_on_commit(order.pk)
        if request.GET.get("fail"):
            raise RuntimeError("payment provider down")
    return JsonResponse({"order": order.pk, "task_id": result.id})
