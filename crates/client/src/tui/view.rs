//! Drawing the app: the topic bar on top; the room list on the left
//! (hidden on terminals narrower than [`ROOM_LIST_MIN_WIDTH`]), the
//! message pane with the scrollback of the view looked at, the members
//! panel on the right (hidden narrower than [`PANEL_MIN_WIDTH`]); the
//! status line with irssi's activity bar, and the input line. Lines are
//! wrapped here, by display width, so wide characters and emoji never
//! break the layout. The side panels are `side`'s.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::app::App;
use super::editor::{char_width, text_width};
use super::entry::{Entry, Look};
use super::side::{draw_members, draw_room_list};

/// The members panel's width, border included.
pub(super) const PANEL_WIDTH: u16 = 20;

/// Narrower than this, the members panel is not shown.
pub const PANEL_MIN_WIDTH: u16 = 100;

/// The room list's width, border included.
pub(super) const ROOM_LIST_WIDTH: u16 = 18;

/// Narrower than this, the room list is not shown.
pub const ROOM_LIST_MIN_WIDTH: u16 = 60;

/// The colours names are given, each name always the same one.
const NAME_COLOURS: [Color; 10] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::Blue,
    Color::LightRed,
    Color::LightGreen,
    Color::LightCyan,
    Color::LightMagenta,
    Color::LightYellow,
];

/// A name's colour: the same on every run and every machine (FNV-1a).
pub fn name_colour(name: &str) -> Color {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    NAME_COLOURS[hash as usize % NAME_COLOURS.len()]
}

/// Draws the whole app.
pub fn draw(frame: &mut Frame<'_>, app: &mut App, now: Instant) {
    let [header, body, status, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let mut columns = Vec::new();
    let list = body.width >= ROOM_LIST_MIN_WIDTH;
    let panel = app.show_panel && body.width >= PANEL_MIN_WIDTH;
    if list {
        columns.push(Constraint::Length(ROOM_LIST_WIDTH));
    }
    columns.push(Constraint::Min(1));
    if panel {
        columns.push(Constraint::Length(PANEL_WIDTH));
    }
    let areas = Layout::horizontal(columns).split(body);
    let mut areas = areas.iter().copied();
    if list && let Some(area) = areas.next() {
        draw_room_list(frame, app, area);
    }
    if let Some(area) = areas.next() {
        draw_messages(frame, app, area);
    }
    if panel && let Some(area) = areas.next() {
        draw_members(frame, app, area);
    }
    draw_header(frame, app, header);
    draw_status(frame, app, status, now);
    draw_input(frame, app, input);
}

/// The bar's style: the topic bar's and the status line's.
fn bar_style() -> Style {
    Style::default().fg(Color::Black).bg(Color::Gray)
}

/// A line of the bar's style, padded to `area`'s width.
fn draw_bar(frame: &mut Frame<'_>, area: Rect, mut text: String) {
    let pad = usize::from(area.width).saturating_sub(text_width(&text));
    text.push_str(&" ".repeat(pad));
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(text, bar_style()))),
        area,
    );
}

fn draw_header(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let view = app.rooms.current();
    let text = match (&view.topic, view.room()) {
        (Some(topic), _) => format!(" {} │ {topic}", view.label()),
        (None, Some(_)) => format!(" {} │ no topic (/topic TEXT sets one)", view.label()),
        (None, None) => format!(
            " {} │ /msg NAME TEXT; a line here answers the last one",
            view.label()
        ),
    };
    draw_bar(frame, area, text);
}

/// One styled cell of text.
type Cell = (char, Style);

fn entry_cells(entry: &Entry) -> Vec<Cell> {
    let mut cells = Vec::new();
    let mut put = |text: &str, style: Style| cells.extend(text.chars().map(|c| (c, style)));
    let base = match entry.look {
        Look::Message => Style::default(),
        Look::History => Style::default().add_modifier(Modifier::DIM),
        Look::Private => Style::default().fg(Color::LightMagenta),
        Look::Own => Style::default().fg(Color::Gray),
        Look::Notice => Style::default()
            .fg(Color::DarkGray)
            .add_modifier(Modifier::ITALIC),
        Look::Error => Style::default().fg(Color::Red),
    };
    let base = if entry.mention {
        base.bg(Color::Rgb(80, 60, 0)).add_modifier(Modifier::BOLD)
    } else {
        base
    };
    if let Some(time) = &entry.time {
        put(time, Style::default().fg(Color::DarkGray));
        put(" ", base);
    }
    if entry.look == Look::History {
        put("· ", base);
    }
    if entry.look == Look::Private && entry.from.is_some() {
        put("[private] ", base.add_modifier(Modifier::BOLD));
    }
    if let Some(from) = &entry.from {
        let name_style = match entry.look {
            Look::Own => base.add_modifier(Modifier::BOLD),
            _ => base.fg(name_colour(from)).add_modifier(Modifier::BOLD),
        };
        if entry.action {
            put("* ", base);
            put(from, name_style);
            put(" ", base);
        } else {
            put(from, name_style);
            put(
                if entry.look == Look::Own {
                    " (you): "
                } else {
                    ": "
                },
                base,
            );
        }
    } else if entry.look == Look::Own {
        let you = if entry.action { "* (you) " } else { "(you): " };
        put(you, base.add_modifier(Modifier::BOLD));
    }
    put(&entry.text, base);
    cells
}

/// Cuts cells into rows of at most `width` columns, at the last space
/// when the row has one (else anywhere: a long word is cut); a character
/// is never split, and one wider than the row gets a row of its own.
fn wrap(cells: Vec<Cell>, width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut rows = Vec::new();
    let mut row: Vec<Cell> = Vec::new();
    for (c, style) in cells {
        let c = if c == '\t' { ' ' } else { c };
        let used: usize = row.iter().map(|&(c, _)| char_width(c)).sum();
        if used + char_width(c) > width && !row.is_empty() {
            let cut = row
                .iter()
                .rposition(|&(c, _)| c == ' ')
                .filter(|&at| at > 0 && c != ' ')
                .map_or(row.len(), |at| at + 1);
            let rest = row.split_off(cut);
            rows.push(line_of(std::mem::replace(&mut row, rest)));
        }
        if !(row.is_empty() && c == ' ' && !rows.is_empty()) {
            row.push((c, style));
        }
    }
    rows.push(line_of(row));
    rows
}

fn line_of(cells: Vec<Cell>) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style = None;
    for (c, cell_style) in cells {
        if style.is_some_and(|style| style != cell_style) {
            spans.push(Span::styled(
                std::mem::take(&mut text),
                style.unwrap_or_default(),
            ));
        }
        style = Some(cell_style);
        text.push(c);
    }
    if let Some(style) = style {
        spans.push(Span::styled(text, style));
    }
    Line::from(spans)
}

fn draw_messages(frame: &mut Frame<'_>, app: &mut App, area: Rect) {
    let height = usize::from(area.height);
    let width = usize::from(area.width);
    app.page = height.saturating_sub(1).max(1);
    let view = app.rooms.current_mut();
    // Only as many entries as can fill the screen at this scroll, from the
    // newest back.
    let wanted = height + view.scroll;
    let mut rows: Vec<Line<'static>> = Vec::new();
    let mut all = true;
    for entry in view.entries().iter().rev() {
        if rows.len() >= wanted {
            all = false;
            break;
        }
        let mut wrapped = wrap(entry_cells(entry), width);
        wrapped.reverse();
        rows.extend(wrapped);
    }
    // The scroll stops at the oldest line.
    let max_scroll = rows.len().saturating_sub(height);
    view.scroll = view.scroll.min(max_scroll);
    view.at_top = all && view.scroll >= max_scroll;
    let shown: Vec<Line<'static>> = rows
        .into_iter()
        .skip(view.scroll)
        .take(height)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    // Bottom-aligned: a short history sits just above the status line.
    let pad = height.saturating_sub(shown.len());
    let mut lines = vec![Line::default(); pad];
    lines.extend(shown);
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_status(frame: &mut Frame<'_>, app: &App, area: Rect, now: Instant) {
    let view = app.rooms.current();
    let name = app.name.as_deref().unwrap_or("(no name)");
    let mut text = format!(" [{}]", view.label());
    let activity = app.rooms.activity();
    if !activity.is_empty() {
        text.push_str(&format!(" [Act: {activity}]"));
    }
    text.push_str(&format!(" │ {name} │ "));
    if view.page_pending() {
        text.push_str("asking for older messages │ ");
    }
    if view.scroll > 0 {
        text.push_str(&format!("scrolled up {} (PgDn) │ ", view.scroll));
    }
    text.push_str(&app.link_text(now));
    draw_bar(frame, area, text);
}

fn draw_input(frame: &mut Frame<'_>, app: &App, area: Rect) {
    const PROMPT: &str = "> ";
    let room = usize::from(area.width).saturating_sub(PROMPT.len());
    let (shown, cursor) = app.editor.view(room);
    let line = Line::from(vec![
        Span::styled(PROMPT, Style::default().fg(Color::DarkGray)),
        Span::raw(shown),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + (PROMPT.len() + cursor).min(usize::from(area.width.saturating_sub(1))) as u16;
    frame.set_cursor_position((x, area.y));
}
