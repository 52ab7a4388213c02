"""App names and categories for well-known packages (the model and the summaries group by category)."""

from __future__ import annotations

CATEGORIES = ("Communication", "Social", "Video", "Music", "Productivity", "Navigation", "Health & Fitness",
              "News", "Shopping", "Games", "Other")

KNOWN: dict[str, tuple[str, str]] = {
    "com.slack": ("Slack", "Communication"),
    "com.google.android.gm": ("Gmail", "Communication"),
    "com.whatsapp": ("WhatsApp", "Communication"),
    "org.telegram.messenger": ("Telegram", "Communication"),
    "com.microsoft.teams": ("Teams", "Communication"),
    "com.google.android.apps.messaging": ("Messages", "Communication"),
    "com.instagram.android": ("Instagram", "Social"),
    "com.twitter.android": ("X", "Social"),
    "com.facebook.katana": ("Facebook", "Social"),
    "com.zhiliaoapp.musically": ("TikTok", "Social"),
    "com.reddit.frontpage": ("Reddit", "Social"),
    "com.google.android.youtube": ("YouTube", "Video"),
    "com.netflix.mediaclient": ("Netflix", "Video"),
    "com.spotify.music": ("Spotify", "Music"),
    "com.google.android.apps.docs": ("Google Docs", "Productivity"),
    "com.google.android.calendar": ("Calendar", "Productivity"),
    "com.microsoft.office.outlook": ("Outlook", "Productivity"),
    "com.notion.id": ("Notion", "Productivity"),
    "com.google.android.apps.maps": ("Google Maps", "Navigation"),
    "com.citymapper.app.release": ("Citymapper", "Navigation"),
    "com.ubercab": ("Uber", "Navigation"),
    "com.strava": ("Strava", "Health & Fitness"),
    "com.google.android.apps.fitness": ("Google Fit", "Health & Fitness"),
    "bbc.mobile.news.ww": ("BBC News", "News"),
    "com.guardian": ("The Guardian", "News"),
    "com.amazon.mShop.android.shopping": ("Amazon", "Shopping"),
    "com.king.candycrushsaga": ("Candy Crush", "Games"),
    # iOS bundle ids
    "com.apple.mobilesafari": ("Safari", "Productivity"),
    "com.apple.MobileSMS": ("Messages", "Communication"),
    "com.apple.mobilemail": ("Mail", "Communication"),
    "com.apple.Maps": ("Apple Maps", "Navigation"),
    "com.google.ios.youtube": ("YouTube", "Video"),
    "com.burbn.instagram": ("Instagram", "Social"),
    "com.spotify.client": ("Spotify", "Music"),
    "com.tinyspeck.chatlyio": ("Slack", "Communication"),
    "net.whatsapp.WhatsApp": ("WhatsApp", "Communication"),
}


def describe(package: str) -> tuple[str, str]:
    """(app name, category) for a package or bundle id; unknown apps get a readable name and 'Other'."""
    if package in KNOWN:
        return KNOWN[package]
    last = package.rsplit(".", 1)[-1]
    return (last.replace("_", " ").title() or package, "Other")
