//! Drawing the two side panels: the room list on the left (each view's
//! number for Alt+N, its name, its unread count and, marked `@`, how many
//! of those name us; the view looked at highlighted) and the members panel
//! on the right (who is in the room looked at).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::app::App;
use super::editor::{char_width, text_width};
use super::room_view::RoomView;
use super::view::name_colour;

/// `text` cut to at most `width` columns, a character never split.
fn cut(text: &str, width: usize) -> String {
    let mut shown = String::new();
    for c in text.chars() {
        if text_width(&shown) + char_width(c) > width {
            break;
        }
        shown.push(c);
    }
    shown
}

/// One row of the room list, `width` columns: `2 #dev      3 @1`.
pub(super) fn room_row(number: usize, view: &RoomView, width: usize) -> String {
    let counts = match (view.unread, view.mentions) {
        (0, _) => String::new(),
        (unread, 0) => format!(" {unread}"),
        (unread, mentions) => format!(" {unread} @{mentions}"),
    };
    let room = width.saturating_sub(text_width(&counts));
    let name = cut(&format!("{number} {}", view.label()), room);
    let pad = room.saturating_sub(text_width(&name));
    format!("{name}{}{counts}", " ".repeat(pad))
}

pub(super) fn draw_room_list(frame: &mut Frame<'_>, app: &App, area: Rect) {
    // A column of space before the border.
    let width = usize::from(area.width.saturating_sub(2));
    let current = app.rooms.current_index();
    let lines: Vec<Line<'static>> = app
        .rooms
        .views()
        .iter()
        .enumerate()
        .map(|(at, view)| {
            let mut style = Style::default();
            if view.mentions > 0 {
                style = style.fg(Color::Yellow).add_modifier(Modifier::BOLD);
            } else if view.unread > 0 {
                style = style.fg(Color::White).add_modifier(Modifier::BOLD);
            } else {
                style = style.fg(Color::Gray);
            }
            if at == current {
                style = style.fg(Color::Black).bg(Color::Cyan);
            }
            Line::from(Span::styled(room_row(at + 1, view, width), style))
        })
        .collect();
    let block = Block::default()
        .borders(Borders::RIGHT)
        .border_style(Style::default().fg(Color::DarkGray));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

pub(super) fn draw_members(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let view = app.rooms.current();
    let title = format!(" {} ", view.members.len() + view.unnamed as usize);
    let room = usize::from(area.width.saturating_sub(2));
    let mut lines: Vec<Line<'static>> = view
        .members
        .iter()
        .map(|name| {
            let mut style = Style::default().fg(name_colour(name));
            if Some(name) == app.name.as_ref() {
                style = style.add_modifier(Modifier::BOLD);
            }
            Line::from(Span::styled(cut(name, room), style))
        })
        .collect();
    if view.unnamed > 0 {
        lines.push(Line::from(Span::styled(
            format!("+{} no name", view.unnamed),
            Style::default().fg(Color::DarkGray),
        )));
    }
    let block = Block::default()
        .borders(Borders::LEFT)
        .title(title)
        .border_style(Style::default().fg(Color::DarkGray));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::room_view::ViewKind;

    #[test]
    fn a_room_row_shows_its_number_name_and_counts() {
        let mut view = RoomView::new(ViewKind::Room("development".to_owned()));
        assert_eq!(room_row(2, &view, 17), "2 #development   ");
        view.unread = 3;
        assert_eq!(room_row(2, &view, 17), "2 #development  3");
        view.mentions = 1;
        assert_eq!(room_row(2, &view, 17), "2 #developme 3 @1");
    }
}
