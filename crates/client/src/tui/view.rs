//! Drawing the app: the message pane with its scrollback, the members
//! panel beside it (hidden on terminals narrower than [`PANEL_MIN_WIDTH`]),
//! the status line and the input line. Lines are wrapped here, by display
//! width, so wide characters and emoji never break the layout.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::app::{App, Entry, Look};
use super::editor::{char_width, text_width};

/// The members panel's width, border included.
pub(super) const PANEL_WIDTH: u16 = 20;

/// Narrower than this, the members panel is not shown.
pub const PANEL_MIN_WIDTH: u16 = 60;

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
    let [body, status, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let panel = app.show_panel && body.width >= PANEL_MIN_WIDTH;
    let (messages, members) = if panel {
        let [messages, members] =
            Layout::horizontal([Constraint::Min(1), Constraint::Length(PANEL_WIDTH)]).areas(body);
        (messages, Some(members))
    } else {
        (body, None)
    };
    draw_messages(frame, app, messages);
    if let Some(area) = members {
        draw_members(frame, app, area);
    }
    draw_status(frame, app, status, now);
    draw_input(frame, app, input);
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
        put("(you): ", base.add_modifier(Modifier::BOLD));
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
    // Only as many entries as can fill the screen at this scroll, from the
    // newest back.
    let wanted = height + app.scroll;
    let mut rows: Vec<Line<'static>> = Vec::new();
    for entry in app.entries.iter().rev() {
        let mut wrapped = wrap(entry_cells(entry), width);
        wrapped.reverse();
        rows.extend(wrapped);
        if rows.len() >= wanted {
            break;
        }
    }
    // The scroll stops at the oldest line.
    let max_scroll = rows.len().saturating_sub(height);
    app.scroll = app.scroll.min(max_scroll);
    let shown: Vec<Line<'static>> = rows
        .into_iter()
        .skip(app.scroll)
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

fn draw_members(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let title = format!(" {} ", app.members.len() + app.unnamed as usize);
    let mut lines: Vec<Line<'static>> = app
        .members
        .iter()
        .map(|name| {
            let mut style = Style::default().fg(name_colour(name));
            if Some(name) == app.name.as_ref() {
                style = style.add_modifier(Modifier::BOLD);
            }
            let room = usize::from(area.width.saturating_sub(2));
            let mut shown = String::new();
            for c in name.chars() {
                if text_width(&shown) + char_width(c) > room {
                    break;
                }
                shown.push(c);
            }
            Line::from(Span::styled(shown, style))
        })
        .collect();
    if app.unnamed > 0 {
        lines.push(Line::from(Span::styled(
            format!("+{} no name", app.unnamed),
            Style::default().fg(Color::DarkGray),
        )));
    }
    let block = Block::default()
        .borders(Borders::LEFT)
        .title(title)
        .border_style(Style::default().fg(Color::DarkGray));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_status(frame: &mut Frame<'_>, app: &App, area: Rect, now: Instant) {
    let room = app
        .room
        .as_deref()
        .map_or_else(|| "-".to_owned(), |room| format!("#{room}"));
    let name = app.name.as_deref().unwrap_or("(no name)");
    let mut text = format!(" {room} │ {name} │ ");
    if app.scroll > 0 {
        text.push_str(&format!("scrolled up {} (PgDn) │ ", app.scroll));
    }
    text.push_str(&app.link_text(now));
    let style = Style::default().fg(Color::Black).bg(Color::Gray);
    let width = usize::from(area.width);
    let pad = width.saturating_sub(text_width(&text));
    text.push_str(&" ".repeat(pad));
    frame.render_widget(Paragraph::new(Line::from(Span::styled(text, style))), area);
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
