from django.urls import path

from review import views

urlpatterns: list = []

# Review page (H6).
urlpatterns += [path("", views.review_page, name="review-page")]
