from django.db import models


class Order(models.Model):
    number = models.CharField(max_length=32)
    paid = models.BooleanField(default=False)
