// Light and dark palettes on the Fusion style (the same look on every desktop).
#pragma once
#include <QString>

namespace mcw::studio {

enum class Theme { Light, Dark };

void apply_theme(Theme theme);
QString theme_key(Theme theme);                 // "light" / "dark", as stored in QSettings
Theme theme_from_key(const QString& key);       // anything unknown is Light

}  // namespace mcw::studio
