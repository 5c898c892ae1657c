"""Role checks for pages: anonymous users go to the login page, signed-in users without
the role get 403 (a redirect to login would loop for someone who is already logged in).

Staff and superusers pass every role check: they run the platform.
"""
from functools import wraps

from django.conf import settings
from django.contrib.auth.mixins import AccessMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from rest_framework import permissions

from toxplatform.accounts.models import Role
from toxplatform.accounts.selectors import user_roles


def has_any_role(user, roles) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return bool(user_roles(user) & set(roles))


def role_required(*roles: str):
    """View decorator: `@role_required(Role.RESEARCHER)`; several roles mean any of them."""
    if not roles:
        raise ValueError("role_required needs at least one role")

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_any_role(request.user, roles):
                raise PermissionDenied(f"This page needs the role: {' or '.join(roles)}.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class RoleRequiredMixin(AccessMixin):
    """The same check for class-based views: set `required_roles = (Role.ANNOTATOR,)`."""

    required_roles: tuple[str, ...] = ()

    def dispatch(self, request, *args, **kwargs):
        if not self.required_roles:
            raise ImproperlyConfigured(f"{type(self).__name__} sets no required_roles")
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not has_any_role(request.user, self.required_roles):
            raise PermissionDenied(f"This page needs the role: {' or '.join(self.required_roles)}.")
        return super().dispatch(request, *args, **kwargs)


class IsResearcher(permissions.BasePermission):
    """API: the corpus (with its gold labels) and evaluation jobs are researchers' data;
    annotators must not see gold labels or scores before they judge."""

    message = "This needs the Researcher role."

    def has_permission(self, request, view) -> bool:
        return has_any_role(request.user, (Role.RESEARCHER,))


# permission_classes of researcher-only API views: anonymous -> 401, without the role -> 403.
RESEARCHER_API = [permissions.IsAuthenticated, IsResearcher]


# --- leaderboards ---------------------------------------------------------------------------
# They name models and methods: researchers' reading, not annotators' (who judge outputs
# blind). An operator may open them to everyone, signed in or not (TOXPLATFORM_PUBLIC_LEADERBOARDS).


def can_read_leaderboards(user) -> bool:
    return settings.LEADERBOARDS_PUBLIC or has_any_role(user, (Role.RESEARCHER,))


def leaderboard_access(view):
    """Page decorator: anonymous users log in first (unless public), others need the role."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if can_read_leaderboards(request.user):
            return view(request, *args, **kwargs)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        raise PermissionDenied("Leaderboards are for researchers.")

    return wrapper


class CanReadLeaderboards(permissions.BasePermission):
    message = "Leaderboards are for researchers."

    def has_permission(self, request, view) -> bool:
        return can_read_leaderboards(request.user)


def is_owner_or_admin(user, owner_id) -> bool:
    """Changing someone's work (cancelling a job): its owner, or staff."""
    return bool(user.is_authenticated and (user.is_staff or user.is_superuser or owner_id == user.pk))
class IsAnnotator(permissions.BasePermission):
    """API: an annotator's own queue (next item, answer, skip)."""

    message = "This needs the Annotator role."

    def has_permission(self, request, view) -> bool:
        return has_any_role(request.user, (Role.ANNOTATOR,))


ANNOTATOR_API = [permissions.IsAuthenticated, IsAnnotator]
