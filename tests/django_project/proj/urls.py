from django.contrib import admin
from django.urls import include, path
from orders import views

urlpatterns = [
    path("orders/", views.create_order),
    path("admin/conveyor/", include("conveyor.contrib.django.urls")),
    path("admin/", admin.site.urls),
]
